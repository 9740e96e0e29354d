// pause: the sandbox (infra) container of the test node's pods. It holds the pod's
// namespaces open, reaps orphaned children (it is PID 1 when the pod shares a PID
// namespace) and exits 0 on SIGTERM/SIGINT so containerd can stop a sandbox quickly.
package main

import (
	"os"
	"os/signal"
	"syscall"
)

func main() {
	sigs := make(chan os.Signal, 4)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT, syscall.SIGCHLD)
	for s := range sigs {
		if s == syscall.SIGCHLD {
			for {
				var ws syscall.WaitStatus
				pid, err := syscall.Wait4(-1, &ws, syscall.WNOHANG, nil)
				if pid <= 0 || err != nil {
					break
				}
			}
			continue
		}
		os.Exit(0)
	}
}
