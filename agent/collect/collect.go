// Package collect takes a host's inventory and facts for the agent: the inventory engine over the
// host's root in host mode, and the host facts (hostname, machine-id, OS, running kernel, addresses,
// listening sockets with their processes) read under the same root.
package collect

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/vigil-sec/vigil/agent/protocol"
	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/inventory/extractors"
	"github.com/vigil-sec/vigil/inventory/osrelease"
	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/source/dir"
)

// DefaultSensors are enabled on a new agent.
var DefaultSensors = []string{protocol.SensorOSPackages, protocol.SensorLangPackages, protocol.SensorPorts, protocol.SensorHostFacts}

// KnownSensor reports whether name is one of the protocol's sensors.
func KnownSensor(name string) bool { return slices.Contains(DefaultSensors, name) }

// osExtractors are the OS package databases (the os-packages sensor); every other extractor of the
// registry belongs to the language-packages sensor.
var osExtractors = map[string]bool{"dpkg": true, "rpm": true, "apk": true}

// Snapshot is one collection.
type Snapshot struct {
	Inventory *model.Inventory
	Facts     *protocol.Facts
	// Errors are problems worth a heartbeat line (a table that could not be read, ...).
	Errors []string
}

// Collector collects a host under Root.
type Collector struct {
	Root       string // "/" on a host; a mounted root in a container or a test
	Sensors    []string
	ExtraPaths []string
	// Registry is the set of extractors; nil uses inventory/extractors.Default(), the same list as
	// `vigil scan` (none of which links an SQL driver).
	Registry *inventory.Registry
	// Addrs lists the host's addresses; nil uses net.InterfaceAddrs (only meaningful when the agent
	// shares the host's network namespace, which the packaged unit does).
	Addrs func() ([]net.Addr, error)
	// Timeout bounds one collection (0: 15 minutes, Inspector's limit).
	Timeout time.Duration
}

// Collect takes a snapshot.
func (c *Collector) Collect(ctx context.Context) (*Snapshot, error) {
	root := c.Root
	if root == "" {
		root = "/"
	}
	snap := &Snapshot{}
	on := func(s string) bool { return slices.Contains(c.Sensors, s) }
	reg := c.Registry
	if reg == nil {
		reg = extractors.Default()
	}
	var keep []string
	for _, x := range reg.Extractors() {
		if osExtractors[x.Name()] && on(protocol.SensorOSPackages) || !osExtractors[x.Name()] && on(protocol.SensorLangPackages) {
			keep = append(keep, x.Name())
		}
	}
	t, err := dir.Open(root)
	if err != nil {
		return nil, fmt.Errorf("open root %s: %w", root, err)
	}
	defer t.Close()
	timeout := c.Timeout
	if timeout == 0 {
		timeout = 15 * time.Minute
	}
	eng := inventory.New(osrelease.Detector{}, reg.Only(keep...), inventory.Config{
		Host: true, ExtraPaths: c.ExtraPaths, Timeout: timeout, Workers: 1, MaxPackages: 100000,
	})
	inv, err := eng.Run(ctx, t.FS, t.Info)
	if err != nil {
		return nil, fmt.Errorf("inventory of %s: %w", root, err)
	}
	snap.Inventory = inv
	if on(protocol.SensorHostFacts) || on(protocol.SensorPorts) {
		f := &protocol.Facts{OS: inv.OS}
		if on(protocol.SensorHostFacts) {
			snap.Errors = append(snap.Errors, c.hostFacts(root, f)...)
		}
		if on(protocol.SensorPorts) {
			socks, errs := ListeningSockets(root)
			f.Listening = socks
			snap.Errors = append(snap.Errors, errs...)
		}
		snap.Facts = f
	}
	return snap, nil
}

// hostFacts fills hostname, machine-id, kernel and addresses.
func (c *Collector) hostFacts(root string, f *protocol.Facts) (errs []string) {
	read := func(rel string) string {
		b, err := readSmall(filepath.Join(root, rel), 4096)
		if err != nil {
			return ""
		}
		return strings.TrimSpace(string(b))
	}
	f.Hostname = read("proc/sys/kernel/hostname")
	if f.Hostname == "" {
		f.Hostname = read("etc/hostname")
	}
	if f.Hostname == "" {
		f.Hostname, _ = os.Hostname() // the agent's own, shared with the host in the packaged unit
	}
	f.MachineID = read("etc/machine-id")
	if f.MachineID == "" {
		f.MachineID = read("var/lib/dbus/machine-id")
	}
	if root == "/" {
		f.KernelVersion = unameRelease()
	}
	if f.KernelVersion == "" {
		f.KernelVersion = read("proc/sys/kernel/osrelease")
	}
	addrs := c.Addrs
	if addrs == nil {
		addrs = net.InterfaceAddrs
	}
	as, err := addrs()
	if err != nil {
		errs = append(errs, fmt.Sprintf("addresses: %v", err))
	}
	for _, a := range as {
		ipn, ok := a.(*net.IPNet)
		if !ok || ipn.IP.IsLoopback() || ipn.IP.IsLinkLocalUnicast() {
			continue
		}
		f.Addresses = append(f.Addresses, ipn.IP.String())
	}
	slices.Sort(f.Addresses)
	return errs
}

func unameRelease() string {
	var u syscall.Utsname
	if err := syscall.Uname(&u); err != nil {
		return ""
	}
	var b strings.Builder
	for _, c := range u.Release {
		if c == 0 {
			break
		}
		b.WriteByte(byte(c))
	}
	return b.String()
}

// ListeningSockets reads root/proc/net/{tcp,tcp6,udp,udp6} and maps each socket's inode to the
// process holding it through root/proc/<pid>/fd. Unreadable tables are reported, not fatal; sockets
// whose process cannot be seen (another namespace, no permission) are listed without one.
func ListeningSockets(root string) ([]protocol.Socket, []string) {
	var errs []string
	var entries []NetEntry
	for _, proto := range []string{"tcp", "tcp6", "udp", "udp6"} {
		p := filepath.Join(root, "proc/net", proto)
		f, err := os.Open(p)
		if err != nil {
			if !errors.Is(err, fs.ErrNotExist) {
				errs = append(errs, fmt.Sprintf("%s: %v", p, err))
			}
			continue
		}
		es, err := ParseProcNet(f, proto)
		f.Close()
		if err != nil {
			errs = append(errs, fmt.Sprintf("%s: %v", p, err))
		}
		entries = append(entries, es...)
	}
	if len(entries) == 0 {
		return nil, errs
	}
	owners := socketOwners(root)
	out := make([]protocol.Socket, 0, len(entries))
	for _, e := range entries {
		s := protocol.Socket{Protocol: e.Protocol, Address: e.Addr.String(), Port: e.Port}
		if o, ok := owners[e.Inode]; ok && e.Inode != 0 {
			s.PID, s.Process = o.pid, o.comm
		}
		out = append(out, s)
	}
	slices.SortFunc(out, func(a, b protocol.Socket) int {
		if c := strings.Compare(a.Protocol, b.Protocol); c != 0 {
			return c
		}
		if a.Port != b.Port {
			return a.Port - b.Port
		}
		return strings.Compare(a.Address, b.Address)
	})
	return slices.CompactFunc(out, func(a, b protocol.Socket) bool { return a == b }), errs
}

type owner struct {
	pid  int
	comm string
}

// maxFDsPerProcess bounds the fd scan of one process.
const maxFDsPerProcess = 65536

// socketOwners maps socket inodes to the lowest PID holding them ("socket:[12345]" links).
func socketOwners(root string) map[uint64]owner {
	out := map[uint64]owner{}
	procDir := filepath.Join(root, "proc")
	ents, err := os.ReadDir(procDir)
	if err != nil {
		return out
	}
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil || pid <= 0 {
			continue
		}
		fdDir := filepath.Join(procDir, e.Name(), "fd")
		d, err := os.Open(fdDir)
		if err != nil {
			continue // gone, or not ours to read
		}
		names, _ := d.Readdirnames(maxFDsPerProcess)
		d.Close()
		var comm string
		for _, n := range names {
			link, err := os.Readlink(filepath.Join(fdDir, n))
			if err != nil {
				continue
			}
			rest, ok := strings.CutPrefix(link, "socket:[")
			if !ok {
				continue
			}
			inode, err := strconv.ParseUint(strings.TrimSuffix(rest, "]"), 10, 64)
			if err != nil {
				continue
			}
			if o, seen := out[inode]; seen && o.pid < pid {
				continue
			}
			if comm == "" {
				b, _ := readSmall(filepath.Join(procDir, e.Name(), "comm"), 256)
				comm = strings.TrimSpace(string(b))
			}
			out[inode] = owner{pid: pid, comm: comm}
		}
	}
	return out
}

// readSmall reads at most limit bytes of a file (proc files report size 0, so no Stat).
func readSmall(path string, limit int64) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	b := make([]byte, limit)
	n, err := f.Read(b)
	if n == 0 && err != nil {
		return nil, err
	}
	return b[:n], nil
}
