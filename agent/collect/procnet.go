package collect

import (
	"bufio"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"io"
	"net/netip"
	"strconv"
	"strings"
)

// NetEntry is one socket of a /proc/net/{tcp,tcp6,udp,udp6} table that is listening: a TCP socket
// in state LISTEN, or an unconnected UDP socket (remote address all zeros).
type NetEntry struct {
	Protocol string
	Addr     netip.Addr
	Port     int
	Inode    uint64
}

// Kernel socket states (include/net/tcp_states.h).
const (
	tcpListen = 0x0A
	tcpClose  = 0x07 // an unconnected UDP socket
)

// maxProcNetLines bounds one table: a host with more sockets than this is reported as truncated.
const maxProcNetLines = 1 << 20

// ParseProcNet reads one /proc/net table of protocol proto ("tcp", "tcp6", "udp", "udp6") and
// returns its listening sockets. Addresses are printed by the kernel as 32-bit words in host byte
// order; Vigil's agent targets little-endian Linux (amd64, arm64), as the format is read here.
func ParseProcNet(r io.Reader, proto string) ([]NetEntry, error) {
	isUDP := strings.HasPrefix(proto, "udp")
	v6 := strings.HasSuffix(proto, "6")
	if proto != "tcp" && proto != "tcp6" && proto != "udp" && proto != "udp6" {
		return nil, fmt.Errorf("unknown protocol %q", proto)
	}
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 512), 4096) // real lines are ~150 bytes
	var out []NetEntry
	line := 0
	for sc.Scan() {
		line++
		if line == 1 {
			continue // the header: "sl local_address rem_address st ..."
		}
		if line > maxProcNetLines {
			return out, fmt.Errorf("more than %d sockets: truncated", maxProcNetLines)
		}
		f := strings.Fields(sc.Text())
		if len(f) == 0 {
			continue
		}
		if len(f) < 10 {
			return out, fmt.Errorf("line %d: %d fields, want at least 10", line, len(f))
		}
		st, err := strconv.ParseUint(f[3], 16, 8)
		if err != nil {
			return out, fmt.Errorf("line %d: state %q: %w", line, f[3], err)
		}
		addr, port, err := parseHexAddr(f[1], v6)
		if err != nil {
			return out, fmt.Errorf("line %d: local address: %w", line, err)
		}
		raddr, _, err := parseHexAddr(f[2], v6)
		if err != nil {
			return out, fmt.Errorf("line %d: remote address: %w", line, err)
		}
		inode, err := strconv.ParseUint(f[9], 10, 64)
		if err != nil {
			return out, fmt.Errorf("line %d: inode %q: %w", line, f[9], err)
		}
		listening := st == tcpListen && !isUDP || isUDP && st == tcpClose && raddr.IsUnspecified()
		if !listening {
			continue
		}
		out = append(out, NetEntry{Protocol: proto, Addr: addr, Port: port, Inode: inode})
	}
	if err := sc.Err(); err != nil {
		return out, fmt.Errorf("line %d: %w", line+1, err)
	}
	return out, nil
}

// parseHexAddr parses "0100007F:0016" (IPv4) or 32 hex digits + ":PORT" (IPv6).
func parseHexAddr(s string, v6 bool) (netip.Addr, int, error) {
	host, portHex, ok := strings.Cut(s, ":")
	if !ok {
		return netip.Addr{}, 0, fmt.Errorf("%q has no port", s)
	}
	port, err := strconv.ParseUint(portHex, 16, 16)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("port %q: %w", portHex, err)
	}
	want := 8
	if v6 {
		want = 32
	}
	if len(host) != want {
		return netip.Addr{}, 0, fmt.Errorf("address %q: %d hex digits, want %d", host, len(host), want)
	}
	raw, err := hex.DecodeString(host)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("address %q: %w", host, err)
	}
	// Each 32-bit word is printed in host (little-endian) order: swap back to network order.
	var b [16]byte
	for i := 0; i < len(raw); i += 4 {
		binary.BigEndian.PutUint32(b[i:], binary.LittleEndian.Uint32(raw[i:]))
	}
	var a netip.Addr
	if v6 {
		a = netip.AddrFrom16(b).Unmap()
	} else {
		a = netip.AddrFrom4([4]byte(b[:4]))
	}
	return a, int(port), nil
}
