package version

import (
	"bufio"
	"os"
	"os/exec"
	"sort"
	"strings"
	"testing"
)

// TestDpkgAgainstCLI compares pairs of the real package versions installed on
// this machine with `dpkg --compare-versions`, where dpkg exists.
func TestDpkgAgainstCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("runs dpkg")
	}
	dpkg, err := exec.LookPath("dpkg")
	if err != nil {
		t.Skip("no dpkg")
	}
	f, err := os.Open("/var/lib/dpkg/status")
	if err != nil {
		t.Skip("no dpkg status file")
	}
	defer f.Close()
	seen := map[string]bool{}
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "Version: "); ok {
			seen[v] = true
		}
	}
	var vs []string
	for v := range seen {
		vs = append(vs, v)
	}
	sort.Strings(vs)
	n := 0
	// Neighbours in string order share prefixes; far pairs mix schemes.
	for i := 0; i < len(vs) && i < 300; i++ {
		a, b := vs[i], vs[(i+1)%len(vs)]
		if i%2 == 1 {
			b = vs[(i*131+17)%len(vs)]
		}
		got, err := Compare(Dpkg, a, b)
		if err != nil {
			t.Errorf("Compare(%q, %q): %v", a, b, err)
			continue
		}
		want := 0
		if exec.Command(dpkg, "--compare-versions", a, "lt", b).Run() == nil {
			want = -1
		} else if exec.Command(dpkg, "--compare-versions", a, "gt", b).Run() == nil {
			want = 1
		}
		n++
		if got != want {
			t.Errorf("Compare(%q, %q) = %d, dpkg says %d", a, b, got, want)
		}
	}
	t.Logf("%d pairs of installed versions agree with dpkg", n)
}
