package collect

import (
	"context"
	"github.com/vigil-sec/vigil/inventory/extractors"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/agent/protocol"
)

func TestParseProcNet(t *testing.T) {
	tests := []struct {
		file, proto string
		want        []NetEntry
	}{
		{"proc-net-tcp", "tcp", []NetEntry{
			{"tcp", netip.MustParseAddr("0.0.0.0"), 22, 20461},
			{"tcp", netip.MustParseAddr("127.0.0.1"), 5432, 23117},
			// the ESTABLISHED (01) and TIME_WAIT (06) lines are not listening
		}},
		{"proc-net-tcp6", "tcp6", []NetEntry{
			{"tcp6", netip.MustParseAddr("::"), 22, 20463},
			{"tcp6", netip.MustParseAddr("::1"), 631, 19780},
			{"tcp6", netip.MustParseAddr("127.0.0.1"), 8080, 40112}, // ::ffff:127.0.0.1
		}},
		{"proc-net-udp", "udp", []NetEntry{
			{"udp", netip.MustParseAddr("127.0.0.53"), 53, 18821},
			{"udp", netip.MustParseAddr("0.0.0.0"), 68, 17412},
			// the connected socket to 8.8.8.8:53 is not listening
		}},
		{"proc-net-udp6", "udp6", []NetEntry{{"udp6", netip.MustParseAddr("::"), 546, 17901}}},
	}
	for _, tc := range tests {
		t.Run(tc.file, func(t *testing.T) {
			f, err := os.Open(filepath.Join("testdata", tc.file))
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			got, err := ParseProcNet(f, tc.proto)
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v\nwant %v", got, tc.want)
			}
		})
	}
}

func TestParseProcNetErrors(t *testing.T) {
	head := "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"
	tests := []struct{ name, body, proto, want string }{
		{"bad proto", head, "sctp", "unknown protocol"},
		{"short line", head + "   0: 00000000:0016 00000000:0000 0A\n", "tcp", "line 2: 4 fields"},
		{"bad address", head + "   0: 0000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n", "tcp", "7 hex digits"},
		{"v4 in tcp6", head + "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n", "tcp6", "want 32"},
		{"bad port", head + "   0: 00000000:XYZ1 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 1 1\n", "tcp", "port"},
		{"bad inode", head + "   0: 00000000:0016 00000000:0000 0A 00000000:00000000 00:00000000 00000000 0 0 -1 1\n", "tcp", "inode"},
		{"long line", head + strings.Repeat("0", 5000) + "\n", "tcp", "too long"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := ParseProcNet(strings.NewReader(tc.body), tc.proto)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("err = %v, want %q", err, tc.want)
			}
		})
	}
}

func FuzzParseProcNet(f *testing.F) {
	for _, name := range []string{"proc-net-tcp", "proc-net-tcp6", "proc-net-udp", "proc-net-udp6"} {
		b, err := os.ReadFile(filepath.Join("testdata", name))
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b, strings.TrimPrefix(name, "proc-net-"))
	}
	f.Fuzz(func(t *testing.T, b []byte, proto string) {
		es, err := ParseProcNet(strings.NewReader(string(b)), proto)
		for _, e := range es {
			if e.Port < 0 || e.Port > 65535 || !e.Addr.IsValid() {
				t.Fatalf("bad entry %+v (err %v)", e, err)
			}
		}
	})
}

// fakeRoot builds a root with /proc/net tables and two processes holding sockets.
func fakeRoot(t *testing.T) string {
	t.Helper()
	root := t.TempDir()
	mk := func(rel, content string) {
		p := filepath.Join(root, rel)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for _, n := range []string{"tcp", "tcp6", "udp", "udp6"} {
		b, err := os.ReadFile(filepath.Join("testdata", "proc-net-"+n))
		if err != nil {
			t.Fatal(err)
		}
		mk("proc/net/"+n, string(b))
	}
	link := func(pid, fd, target string) {
		p := filepath.Join(root, "proc", pid, "fd", fd)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, p); err != nil {
			t.Fatal(err)
		}
	}
	// sshd (pid 812) holds both port-22 sockets; postgres (pid 1034) the 5432 one; a forked
	// sshd child (pid 2210) shares the listener: the lower pid names it.
	mk("proc/812/comm", "sshd\n")
	link("812", "0", "/dev/null")
	link("812", "3", "socket:[20461]")
	link("812", "4", "socket:[20463]")
	mk("proc/2210/comm", "sshd\n")
	link("2210", "3", "socket:[20461]")
	mk("proc/1034/comm", "postgres\n")
	link("1034", "5", "socket:[23117]")
	link("1034", "6", "pipe:[99812]")
	mk("proc/sys/kernel/hostname", "web-01\n")
	mk("proc/sys/kernel/osrelease", "6.1.0-26-amd64\n")
	mk("etc/machine-id", "5f0c8a9b2e3d4c1a9b8e7f6d5c4b3a29\n")
	mk("etc/os-release", "PRETTY_NAME=\"Debian GNU/Linux 12 (bookworm)\"\nNAME=\"Debian GNU/Linux\"\nVERSION_ID=\"12\"\nVERSION_CODENAME=bookworm\nID=debian\n")
	mk("var/lib/dpkg/status", "Package: openssl\nStatus: install ok installed\nPriority: optional\nSection: utils\nInstalled-Size: 2299\nMaintainer: Debian OpenSSL Team <pkg-openssl-devel@alioth-lists.debian.net>\nArchitecture: amd64\nVersion: 3.0.15-1~deb12u1\nDescription: Secure Sockets Layer toolkit - cryptographic utility\n\n")
	return root
}

func TestListeningSockets(t *testing.T) {
	root := fakeRoot(t)
	got, errs := ListeningSockets(root)
	if len(errs) > 0 {
		t.Fatal(errs)
	}
	want := []protocol.Socket{
		{Protocol: "tcp", Address: "0.0.0.0", Port: 22, PID: 812, Process: "sshd"},
		{Protocol: "tcp", Address: "127.0.0.1", Port: 5432, PID: 1034, Process: "postgres"},
		{Protocol: "tcp6", Address: "::", Port: 22, PID: 812, Process: "sshd"},
		{Protocol: "tcp6", Address: "::1", Port: 631},
		{Protocol: "tcp6", Address: "127.0.0.1", Port: 8080},
		{Protocol: "udp", Address: "127.0.0.53", Port: 53},
		{Protocol: "udp", Address: "0.0.0.0", Port: 68},
		{Protocol: "udp6", Address: "::", Port: 546},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %+v\nwant %+v", got, want)
	}
}

func TestCollectFakeRoot(t *testing.T) {
	root := fakeRoot(t)
	c := &Collector{Root: root, Sensors: DefaultSensors, Addrs: func() ([]net.Addr, error) {
		return []net.Addr{
			&net.IPNet{IP: net.ParseIP("127.0.0.1"), Mask: net.CIDRMask(8, 32)},
			&net.IPNet{IP: net.ParseIP("10.0.2.15"), Mask: net.CIDRMask(24, 32)},
			&net.IPNet{IP: net.ParseIP("fe80::a00:27ff:fe4e:66a1"), Mask: net.CIDRMask(64, 128)},
			&net.IPNet{IP: net.ParseIP("2001:db8::15"), Mask: net.CIDRMask(64, 128)},
		}, nil
	}}
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	f := snap.Facts
	if f.Hostname != "web-01" || f.MachineID != "5f0c8a9b2e3d4c1a9b8e7f6d5c4b3a29" || f.KernelVersion != "6.1.0-26-amd64" {
		t.Errorf("facts %+v", f)
	}
	if !slices.Equal(f.Addresses, []string{"10.0.2.15", "2001:db8::15"}) {
		t.Errorf("addresses %v", f.Addresses)
	}
	if f.OS == nil || f.OS.Ecosystem != "Debian:12" {
		t.Errorf("os %+v", f.OS)
	}
	if len(f.Listening) != 8 {
		t.Errorf("%d sockets", len(f.Listening))
	}
	pk := snap.Inventory.Packages
	if len(pk) != 1 || pk[0].Name != "openssl" || pk[0].Version != "3.0.15-1~deb12u1" || pk[0].Ecosystem != "Debian:12" {
		t.Errorf("packages %+v", pk)
	}

	// Sensors off: no OS packages, no facts.
	c.Sensors = []string{protocol.SensorLangPackages}
	snap, err = c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if len(snap.Inventory.Packages) != 0 || snap.Facts != nil {
		t.Errorf("sensors off: %d packages, facts %+v", len(snap.Inventory.Packages), snap.Facts)
	}
}

// The agent and `vigil scan` share one extractor list.
func TestRegistryMatchesDefaultNames(t *testing.T) {
	var names []string
	for _, x := range extractors.Default().Extractors() {
		names = append(names, x.Name())
	}
	for _, want := range []string{"dpkg", "rpm", "apk", "go-binary", "npm", "python", "java-archive"} {
		if !slices.Contains(names, want) {
			t.Errorf("registry lacks %s: %v", want, names)
		}
	}
}

func TestCollectBookworm(t *testing.T) {
	root := "/root/vigil-bench/targets/rootfs-bookworm"
	if _, err := os.Stat(filepath.Join(root, "var/lib/dpkg/status")); err != nil {
		t.Skip("benchmark corpus not present")
	}
	c := &Collector{Root: root, Sensors: DefaultSensors}
	snap, err := c.Collect(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	n := 0
	for _, p := range snap.Inventory.Packages {
		if p.Extractor == "dpkg" {
			n++
		}
	}
	if n < 50 || snap.Inventory.OS == nil || snap.Inventory.OS.Family != "debian" {
		t.Errorf("%d dpkg packages, os %+v", n, snap.Inventory.OS)
	}
}
