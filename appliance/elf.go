package appliance

import (
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// sharedObjects is the dynamic loader and the shared libraries a set of
// ELF files needs, found on the build host.
type sharedObjects struct {
	// Interpreter is the loader path the executables name (PT_INTERP),
	// e.g. /lib64/ld-linux-x86-64.so.2; empty when every file is static.
	Interpreter string
	// Libs maps each needed soname (DT_NEEDED, transitively) to the
	// host file that provides it, symbolic links resolved.
	Libs map[string]string
}

// resolveShared follows the DT_NEEDED entries of files (and of what they
// need) through dirs, as the dynamic loader would on the build host.
// Sonames in skip are provided otherwise (e.g. libchdb.so itself).
func resolveShared(files, dirs []string, skip ...string) (*sharedObjects, error) {
	so := &sharedObjects{Libs: map[string]string{}}
	queue := append([]string(nil), files...)
	seen := map[string]bool{}
	for len(queue) > 0 {
		file := queue[0]
		queue = queue[1:]
		if seen[file] {
			continue
		}
		seen[file] = true
		interp, needed, err := elfDeps(file)
		if err != nil {
			return nil, err
		}
		if interp != "" {
			if so.Interpreter != "" && so.Interpreter != interp {
				return nil, fmt.Errorf("%s wants loader %s, another file %s", file, interp, so.Interpreter)
			}
			so.Interpreter = interp
		}
	next:
		for _, name := range needed {
			if _, ok := so.Libs[name]; ok {
				continue
			}
			for _, s := range skip {
				if s == name {
					continue next
				}
			}
			host, err := findLib(name, dirs)
			if err != nil {
				return nil, fmt.Errorf("%s needs %s: %w", file, name, err)
			}
			so.Libs[name] = host
			queue = append(queue, host)
		}
	}
	if so.Interpreter != "" {
		if _, ok := so.Libs[filepath.Base(so.Interpreter)]; !ok {
			host, err := filepath.EvalSymlinks(so.Interpreter)
			if err != nil {
				return nil, fmt.Errorf("dynamic loader: %w", err)
			}
			so.Libs[filepath.Base(so.Interpreter)] = host
		}
	}
	return so, nil
}

// elfDeps returns an ELF file's interpreter and DT_NEEDED entries.
func elfDeps(file string) (interp string, needed []string, err error) {
	f, err := elf.Open(file)
	if err != nil {
		return "", nil, fmt.Errorf("reading %s: %w", file, err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type != elf.PT_INTERP {
			continue
		}
		b := make([]byte, p.Filesz)
		if _, err := p.ReadAt(b, 0); err != nil {
			return "", nil, fmt.Errorf("reading %s: interpreter: %w", file, err)
		}
		interp = strings.TrimRight(string(b), "\x00")
	}
	needed, err = f.ImportedLibraries()
	if err != nil && !errors.Is(err, elf.ErrNoSymbols) {
		return "", nil, fmt.Errorf("reading %s: needed libraries: %w", file, err)
	}
	return interp, needed, nil
}

func findLib(name string, dirs []string) (string, error) {
	for _, d := range dirs {
		p := filepath.Join(d, name)
		if _, err := os.Stat(p); err == nil {
			return filepath.EvalSymlinks(p)
		}
	}
	return "", fmt.Errorf("not found in %s", strings.Join(dirs, ", "))
}
