package lab

import (
	"errors"
	"os/exec"
	"runtime"
)

// errSpawnerStopped is returned by spawner.start after stop.
var errSpawnerStopped = errors.New("lab is closed")

// spawner forks the lab's processes from one OS thread that it keeps locked.
//
// Start sets Pdeathsig, and Linux sends that signal when the *thread* that forked the
// child exits, not the process. Any goroutine that ends while locked to its thread
// ends that thread — code that enters a namespace and cannot leave it does exactly
// that — so a child forked from an arbitrary thread could be killed at random. No
// other goroutine runs on a locked thread, so Pdeathsig fires only when the test
// process dies, or when the spawner stops at Close.
type spawner struct {
	reqs chan spawnReq
	quit chan struct{} // closed by stop
	done chan struct{} // closed when the goroutine has returned
}

type spawnReq struct {
	cmd  *exec.Cmd
	errc chan error // buffered; receives cmd.Start's result
}

// newSpawner starts the spawner's goroutine; the lab that owns it calls stop.
func newSpawner() *spawner {
	s := &spawner{reqs: make(chan spawnReq), quit: make(chan struct{}), done: make(chan struct{})}
	go s.run()
	return s
}

func (s *spawner) run() {
	defer close(s.done)
	// Never unlocked: when the spawner stops, its thread ends and Pdeathsig kills
	// any child that survived Close.
	runtime.LockOSThread()
	for {
		select {
		case r := <-s.reqs:
			r.errc <- r.cmd.Start()
		case <-s.quit:
			return
		}
	}
}

// start starts cmd on the spawner's thread.
func (s *spawner) start(cmd *exec.Cmd) error {
	r := spawnReq{cmd: cmd, errc: make(chan error, 1)}
	select {
	case s.reqs <- r:
		return <-r.errc
	case <-s.quit:
		return errSpawnerStopped
	}
}

// stop ends the spawner and waits for its goroutine.
func (s *spawner) stop() {
	close(s.quit)
	<-s.done
}
