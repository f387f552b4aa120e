package cli

import (
	"fmt"
	"log/slog"
	"os"
	"runtime/debug"

	"github.com/gatehouse-dev/gatehouse/internal/gctune"
)

// tuneGC starts adapting GOGC to the live heap for the long-running
// commands (serve, worker): 1600 while the heap is nearly empty, falling toward 25
// as it grows, for about 128 MiB of headroom (see internal/gctune). A $GOGC
// the environment sets is kept as is; $GOMEMLIMIT works either way. It
// returns the setting, for the log.
func tuneGC(log *slog.Logger) string {
	if os.Getenv("GOGC") != "" {
		old := debug.SetGCPercent(100)
		debug.SetGCPercent(old)
		return fmt.Sprintf("GOGC=%d", old)
	}
	gctune.Start(log)
	return fmt.Sprintf("adaptive: GOGC %d-%d for %d MiB of headroom", gctune.MinPercent, gctune.MaxPercent, gctune.Headroom>>20)
}
