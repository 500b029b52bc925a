package main

import (
	"fmt"
	"os"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
)

// manCommand writes the man pages (section 1, one per command) into a
// directory: make man runs it, and the container image ships the pages.
func (c *cli) manCommand() *cobra.Command {
	return &cobra.Command{Use: "man DIR", Short: "Write the man pages into DIR", Hidden: true,
		Args: func(cmd *cobra.Command, args []string) error {
			if len(args) != 1 {
				return fail(2, fmt.Errorf("%s: want one directory, got %d arguments", cmd.CommandPath(), len(args)))
			}
			return nil
		},
		RunE: func(cmd *cobra.Command, args []string) error {
			if err := os.MkdirAll(args[0], 0o755); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			// Date: SOURCE_DATE_EPOCH when set (cobra reads it), else today.
			hdr := &doc.GenManHeader{Title: "AGAOBS-AGENT", Section: "1", Source: "agaobs " + agentVersion(), Manual: "agaobs manual"}
			if err := doc.GenManTree(cmd.Root(), hdr, args[0]); err != nil {
				return fmt.Errorf("man pages: %w", err)
			}
			return nil
		}}
}
