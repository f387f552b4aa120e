// Package freeport picks loopback addresses for child processes to listen
// on: test gateways, upstreams and Vault servers that are started with an
// address and bind it some time later.
//
// An address taken from a listener on port 0 and closed again lies in the
// kernel's ephemeral range, from which every outgoing connection on the
// machine is given its local port. In the second or so before the child
// binds it (a gateway starts its audit engine first), a connection made by
// anything else can take it, and the child fails with "address already in
// use". The ports returned here lie outside that range, so only another
// listener could take them, and this process hands out each one once.
package freeport

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
)

const (
	// low is the lowest port returned: above the registered ports most
	// services listen on.
	low = 10000
	// minSpan is the smallest range outside the ephemeral one worth
	// drawing from; with less room, Addr falls back to port 0.
	minSpan = 1000
)

var (
	// rangeFile holds the kernel's ephemeral range, "first last" (a
	// variable for the tests of the fallback).
	rangeFile = "/proc/sys/net/ipv4/ip_local_port_range"

	mu     sync.Mutex
	issued = map[int]bool{}
)

// Addr returns "127.0.0.1:PORT" for a port that is free now, outside the
// ephemeral range, and not returned before by this process.
func Addr() (string, error) {
	port, err := pick(1)
	if err != nil {
		return "", err
	}
	return net.JoinHostPort("127.0.0.1", strconv.Itoa(port)), nil
}

// Pair returns a port that is free together with its successor (Vault's
// cluster listener binds PORT+1), on the same terms as [Addr].
func Pair() (int, error) { return pick(2) }

// pick returns the first of n consecutive free ports.
func pick(n int) (int, error) {
	lo, hi, ok := outside(rangeFile)
	mu.Lock()
	defer mu.Unlock()
	for range 200 {
		var port int
		if ok {
			port = lo + rand.IntN(hi-lo+2-n)
		} else {
			var bound bool
			if port, bound = ephemeral(); !bound {
				return 0, errors.New("no loopback port can be bound")
			}
		}
		if free(port, n) {
			for i := range n {
				issued[port+i] = true
			}
			return port, nil
		}
	}
	return 0, fmt.Errorf("no %d consecutive free loopback ports found", n)
}

// free reports whether ports port..port+n-1 can be bound now and were not
// handed out before.
func free(port, n int) bool {
	var held []net.Listener
	defer func() {
		for _, l := range held {
			l.Close()
		}
	}()
	for i := range n {
		if port+i > 65535 || issued[port+i] {
			return false
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port+i)))
		if err != nil {
			return false
		}
		held = append(held, l)
	}
	return true
}

// ephemeral is the fallback where no range outside the ephemeral one is
// wide enough: a port the kernel picks.
func ephemeral() (int, bool) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, false
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, true
}

// outside returns the widest range of ports at or above low that the
// ephemeral range in path leaves, or ok false if none spans minSpan.
func outside(path string) (lo, hi int, ok bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return 0, 0, false
	}
	f := strings.Fields(string(b))
	if len(f) != 2 {
		return 0, 0, false
	}
	first, err1 := strconv.Atoi(f[0])
	last, err2 := strconv.Atoi(f[1])
	if err1 != nil || err2 != nil || first > last {
		return 0, 0, false
	}
	below := [2]int{low, first - 1}
	above := [2]int{max(low, last+1), 65535}
	best := below
	if above[1]-above[0] > below[1]-below[0] {
		best = above
	}
	if best[1]-best[0]+1 < minSpan {
		return 0, 0, false
	}
	return best[0], best[1], true
}
