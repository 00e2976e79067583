package java

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"strings"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/fsx"
)

const maxLockfileSize = 32 << 20

// GradleLock reads Gradle dependency lockfiles: gradle.lockfile (Gradle 6.8+, one per project) and the
// older per-configuration gradle/dependency-locks/<configuration>.lockfile.
type GradleLock struct{}

// NewGradleLock returns the Gradle lockfile extractor.
func NewGradleLock() *GradleLock { return &GradleLock{} }

// Name implements inventory.Extractor.
func (*GradleLock) Name() string { return "gradle-lockfile" }

// Version implements inventory.Extractor.
func (*GradleLock) Version() int { return 1 }

// Required implements inventory.Extractor.
func (*GradleLock) Required(name string, info fs.FileInfo) bool {
	if !info.Mode().IsRegular() {
		return false
	}
	base := path.Base(name)
	if base == "gradle.lockfile" || base == "buildscript-gradle.lockfile" {
		return true
	}
	return strings.HasSuffix(base, ".lockfile") && strings.HasSuffix(path.Dir(name), "gradle/dependency-locks")
}

// Extract implements inventory.Extractor.
func (*GradleLock) Extract(_ context.Context, in *inventory.Input) ([]model.Package, error) {
	b, err := fsx.ReadFileLimit(in.FS, in.Path, maxLockfileSize)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	pkgs, err := ParseGradleLock(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", in.Location(), err)
	}
	return pkgs, nil
}

// ParseGradleLock parses "group:artifact:version=configuration,..." lines. Comments (#) and the
// "empty=" line are skipped. A dependency locked only in test configurations (names starting with
// "test", as in testCompileClasspath and testRuntimeClasspath) is marked Dev. The older
// per-configuration files have no "=configurations" part.
func ParseGradleLock(b []byte) ([]model.Package, error) {
	var pkgs []model.Package
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	ln := 0
	for sc.Scan() {
		ln++
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || strings.HasPrefix(line, "empty=") {
			continue
		}
		coord, confs, hasConfs := strings.Cut(line, "=")
		parts := strings.Split(coord, ":")
		if len(parts) < 3 {
			return pkgs, fmt.Errorf("line %d: %q is not group:artifact:version", ln, coord)
		}
		p := Properties{GroupID: parts[0], ArtifactID: parts[1], Version: parts[2]}
		if !p.complete() {
			return pkgs, fmt.Errorf("line %d: %q is not group:artifact:version", ln, coord)
		}
		pkg := p.pkg("")
		pkg.Locations = nil
		pkg.Dev = hasConfs && testOnly(confs)
		pkgs = append(pkgs, pkg)
	}
	if err := sc.Err(); err != nil {
		return pkgs, err
	}
	return pkgs, nil
}

func testOnly(confs string) bool {
	n := 0
	for _, c := range strings.Split(confs, ",") {
		c = strings.TrimSpace(c)
		if c == "" {
			continue
		}
		n++
		if !strings.HasPrefix(strings.ToLower(c), "test") {
			return false
		}
	}
	return n > 0
}
