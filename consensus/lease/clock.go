package lease

import (
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Boottime reads CLOCK_BOOTTIME: monotonic, and unlike Go's monotonic clock it keeps
// counting while the machine is suspended, so a lease never outlives a suspend.
//
// It is a raw system call: clock_gettime never blocks, and a scheduler-visible one
// (unix.ClockGettime) wakes Go's sysmon thread from its deep sleep on an idle
// process, which then polls every 20 µs until the goroutine parks again; the lease
// loop reads this clock several times a round.
func Boottime() time.Duration {
	var ts unix.Timespec
	_, _, errno := unix.RawSyscall(unix.SYS_CLOCK_GETTIME, unix.CLOCK_BOOTTIME, uintptr(unsafe.Pointer(&ts)), 0)
	if errno != 0 {
		panic("clock_gettime(CLOCK_BOOTTIME): " + errno.Error()) // Linux ≥ 2.6.39 always has it
	}
	return time.Duration(ts.Nano())
}
