// Command gofrs_flock times github.com/gofrs/flock for bench_peers: Lock and
// Unlock of one flock.Flock in a loop.
//
//	gofrs_flock DIRECTORY ITERATIONS
//
// It locks DIRECTORY/.locks/go.lock through one *flock.Flock, made once and
// reused, as a program holding a lock object does (Lock opens the file each
// time and Unlock closes it, so reuse saves only the allocation).  It prints
// the nanoseconds per Lock+Unlock of the fastest of rounds chunks, as the C
// benchmarks do, so that bench_peers can compare it with them and count its
// system calls under strace (ITERATIONS is rounded down to a multiple of
// rounds).
//
// Debian packages the library as source only, so this builds without a
// module proxy, in GOPATH mode:
//
//	GO111MODULE=off GOPATH=/usr/share/gocode go build -o gofrs_flock .
package main

import (
	"fmt"
	"math"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"time"

	"github.com/gofrs/flock"
)

const rounds = 10

// The loop stays on the main thread, the only one bench_peers traces: the
// runtime's other threads (sysmon above all) make calls on a timer, whose
// number grows with how long the traced run takes, not with the locking.
func init() {
	runtime.LockOSThread()
}

func main() {
	n := 0
	if len(os.Args) == 3 {
		n, _ = strconv.Atoi(os.Args[2])
	}
	if n < rounds {
		fmt.Fprintln(os.Stderr, "usage: gofrs_flock DIRECTORY ITERATIONS")
		os.Exit(2)
	}
	locks := filepath.Join(os.Args[1], ".locks")
	if err := os.MkdirAll(locks, 0o777); err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	lock := flock.New(filepath.Join(locks, "go.lock"))
	chunk := n / rounds
	best := math.Inf(1)
	for r := 0; r < rounds; r++ {
		start := time.Now()
		for i := 0; i < chunk; i++ {
			if err := lock.Lock(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			if err := lock.Unlock(); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
		}
		best = math.Min(best, float64(time.Since(start).Nanoseconds())/float64(chunk))
	}
	fmt.Printf("%.1f\n", best)
}
