package agent

import (
	"context"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/agaobs/agaobs/internal/audit"
	"github.com/agaobs/agaobs/internal/config"
)

// newAuditVerify builds the background verifier of the audit hash chain
// (audit_verify_interval; 0: none). It needs the store (newAudit).
func (a *Agent) newAuditVerify(cfg config.Config) {
	if cfg.AuditVerifyInterval <= 0 || a.auditStore == nil {
		return
	}
	a.auditVerify = audit.NewVerifier(audit.VerifierOptions{Store: a.auditStore,
		Interval: time.Duration(cfg.AuditVerifyInterval), Logger: a.log.With("component", "audit")})
}

// goAuditVerify runs the verifier in the agent's run group until ctx ends.
// A verify in progress finishes first, and Run closes the store only after
// the group is done, so a verify never reads a closed store.
func (a *Agent) goAuditVerify(ctx context.Context, g *errgroup.Group) {
	if a.auditVerify == nil {
		return
	}
	g.Go(func() error { return a.auditVerify.Run(ctx) })
}

// AuditVerifyStatus returns the result of the last background verify of
// the audit hash chain, for the live view: the zero value (Done false)
// before the first verify and when audit_verify_interval is 0.
func (a *Agent) AuditVerifyStatus() audit.VerifyStatus {
	if a.auditVerify == nil {
		return audit.VerifyStatus{}
	}
	return a.auditVerify.Status()
}
