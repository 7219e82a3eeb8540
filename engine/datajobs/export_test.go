package datajobs

import (
	"github.com/lumenflow/lumen/engine/data"
	"github.com/lumenflow/lumen/host"
)

// StartDataset opens d for call c as dataset_open does a pipeline's plan, for the tests that
// set the plan's own options (an allocator that counts, the rows of a batch).
func StartDataset(s *Service, c *host.CallInfo, d *data.Dataset, root string) (int64, error) {
	return s.startDataset(c, d, root, nil)
}
