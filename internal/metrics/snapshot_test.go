package metrics

import (
	"github.com/agaobs/agaobs/internal/pipeline"
	"github.com/agaobs/agaobs/internal/pipeline/pipelinetest"
)

type ringRow = pipelinetest.Ring

// snapshotOf returns the consumer snapshot of rows, as a collector's source.
func snapshotOf(rows []ringRow) func() *pipeline.Snapshot {
	return func() *pipeline.Snapshot { return pipelinetest.Snapshot(rows...) }
}
