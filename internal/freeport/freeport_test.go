package freeport

import (
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"testing"
)

func TestOutside(t *testing.T) {
	for _, tc := range []struct {
		file   string
		lo, hi int
		ok     bool
	}{
		{"32768\t60999\n", 10000, 32767, true},
		{"49152 65535", 10000, 49151, true},
		{"1024 20000", 20001, 65535, true},
		{"1024 65000", 0, 0, false},
		{"10500 65535", 0, 0, false},
		{"garbage", 0, 0, false},
		{"60999 32768", 0, 0, false},
	} {
		path := filepath.Join(t.TempDir(), "range")
		if err := os.WriteFile(path, []byte(tc.file), 0o600); err != nil {
			t.Fatal(err)
		}
		lo, hi, ok := outside(path)
		if lo != tc.lo || hi != tc.hi || ok != tc.ok {
			t.Errorf("outside(%q) = %d, %d, %v; want %d, %d, %v", tc.file, lo, hi, ok, tc.lo, tc.hi, tc.ok)
		}
	}
	if _, _, ok := outside(filepath.Join(t.TempDir(), "missing")); ok {
		t.Error("a missing range file gave a range")
	}
}

// TestAddr: every address is bindable, outside the machine's ephemeral
// range, and never handed out twice.
func TestAddr(t *testing.T) {
	lo, hi, ok := outside(rangeFile)
	for _, addr := range distinctAddrs(t, 50) {
		_, p, _ := net.SplitHostPort(addr)
		port, _ := strconv.Atoi(p)
		if ok && (port < lo || port > hi) {
			t.Errorf("%s is outside %d–%d", addr, lo, hi)
		}
		l, err := net.Listen("tcp", addr)
		if err != nil {
			t.Fatalf("bind %s: %v", addr, err)
		}
		l.Close()
	}
}

func TestPair(t *testing.T) {
	port, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{port, port + 1} {
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("bind %d: %v", p, err)
		}
		l.Close()
	}
	// Neither is handed out again.
	for range 50 {
		addr, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		if _, p, _ := net.SplitHostPort(addr); p == strconv.Itoa(port) || p == strconv.Itoa(port+1) {
			t.Fatalf("%s was handed out by Pair already", addr)
		}
	}
}

// TestTaken: a port some listener holds is never returned.
func TestTaken(t *testing.T) {
	addr, err := Addr()
	if err != nil {
		t.Fatal(err)
	}
	l, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	_, p, _ := net.SplitHostPort(addr)
	port, _ := strconv.Atoi(p)
	mu.Lock()
	delete(issued, port) // forget it: only the bind check stands in the way
	ok := free(port, 1)
	mu.Unlock()
	if ok {
		t.Errorf("port %d is held by a listener but reported free", port)
	}
}

// TestFallback: where the ephemeral range leaves no room, Addr and Pair
// still return free ports (the kernel's), never one twice.
func TestFallback(t *testing.T) {
	path := filepath.Join(t.TempDir(), "range")
	if err := os.WriteFile(path, []byte("1024 65535\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	saved := rangeFile
	rangeFile = path
	t.Cleanup(func() { rangeFile = saved })
	taken := distinctAddrs(t, 20)
	port, err := Pair()
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []int{port, port + 1} {
		if slices.Contains(taken, net.JoinHostPort("127.0.0.1", strconv.Itoa(p))) {
			t.Errorf("Pair gave %d, handed out by Addr already", p)
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err != nil {
			t.Fatalf("bind %d: %v", p, err)
		}
		l.Close()
	}
}

// distinctAddrs takes n addresses from Addr and fails the test if one is
// handed out twice.
func distinctAddrs(t *testing.T, n int) []string {
	t.Helper()
	seen := map[string]bool{}
	var addrs []string
	for range n {
		addr, err := Addr()
		if err != nil {
			t.Fatal(err)
		}
		if seen[addr] {
			t.Fatalf("%s handed out twice", addr)
		}
		seen[addr] = true
		addrs = append(addrs, addr)
	}
	return addrs
}
