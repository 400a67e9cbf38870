package lease

import (
	"time"

	"golang.org/x/sys/unix"
)

// Boottime reads CLOCK_BOOTTIME: monotonic, and unlike Go's monotonic clock it keeps
// counting while the machine is suspended, so a lease never outlives a suspend.
func Boottime() time.Duration {
	var ts unix.Timespec
	if err := unix.ClockGettime(unix.CLOCK_BOOTTIME, &ts); err != nil {
		panic("clock_gettime(CLOCK_BOOTTIME): " + err.Error()) // Linux ≥ 2.6.39 always has it
	}
	return time.Duration(ts.Nano())
}
