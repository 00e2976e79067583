package partition

import (
	"bytes"
	"encoding/binary"
	"errors"
	"hash/crc32"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"unicode/utf16"
)

const linuxFS = "0FC63DAF-8483-4772-8E79-3D69D8477DE4"
const efiSystem = "C12A7328-F81F-11D2-BA4B-00A0C93EC93B"

func putMBREntry(sector []byte, i int, status, typ byte, lba, count uint32) {
	e := sector[446+16*i:]
	e[0], e[4] = status, typ
	binary.LittleEndian.PutUint32(e[8:], lba)
	binary.LittleEndian.PutUint32(e[12:], count)
	sector[510], sector[511] = 0x55, 0xAA
}

// guidBytes encodes a GUID string in GPT's mixed-endian layout.
func guidBytes(s string) []byte {
	var b [16]byte
	var p [5]uint64
	parts := strings.Split(s, "-")
	for i, x := range parts {
		for _, c := range x {
			v := uint64(strings.IndexRune("0123456789ABCDEF", c))
			p[i] = p[i]<<4 | v
		}
	}
	binary.LittleEndian.PutUint32(b[0:], uint32(p[0]))
	binary.LittleEndian.PutUint16(b[4:], uint16(p[1]))
	binary.LittleEndian.PutUint16(b[6:], uint16(p[2]))
	binary.BigEndian.PutUint16(b[8:], uint16(p[3]))
	for i := 0; i < 6; i++ {
		b[10+i] = byte(p[4] >> (40 - 8*i))
	}
	return b[:]
}

type gptPart struct {
	typ, name   string
	first, last uint64
}

// gptDisk builds a disk of size bytes with a protective MBR and a primary GPT of 128 entries.
func gptDisk(size int64, parts []gptPart) []byte {
	d := make([]byte, size)
	putMBREntry(d, 0, 0, 0xEE, 1, uint32(size/512-1))
	ents := d[1024 : 1024+128*128]
	for i, p := range parts {
		e := ents[i*128:]
		copy(e[0:], guidBytes(p.typ))
		copy(e[16:], guidBytes("0A1B2C3D-0000-4000-8000-0000BE0C0011"))
		binary.LittleEndian.PutUint64(e[32:], p.first)
		binary.LittleEndian.PutUint64(e[40:], p.last)
		for j, c := range utf16.Encode([]rune(p.name)) {
			binary.LittleEndian.PutUint16(e[56+2*j:], c)
		}
	}
	h := d[512:]
	copy(h, "EFI PART")
	binary.LittleEndian.PutUint32(h[8:], 0x00010000)
	binary.LittleEndian.PutUint32(h[12:], 92)
	binary.LittleEndian.PutUint64(h[24:], 1)
	binary.LittleEndian.PutUint64(h[32:], uint64(size/512-1))
	binary.LittleEndian.PutUint64(h[40:], 34)
	binary.LittleEndian.PutUint64(h[48:], uint64(size/512-34))
	binary.LittleEndian.PutUint64(h[72:], 2)
	binary.LittleEndian.PutUint32(h[80:], 128)
	binary.LittleEndian.PutUint32(h[84:], 128)
	binary.LittleEndian.PutUint32(h[88:], crc32.ChecksumIEEE(ents))
	binary.LittleEndian.PutUint32(h[16:], crc32.ChecksumIEEE(h[:92]))
	return d
}

func TestRead(t *testing.T) {
	// A DOS table: a primary Linux partition, an extended one holding two logical partitions.
	mbr := make([]byte, 64<<10)
	putMBREntry(mbr, 0, 0x80, 0x83, 2, 20)
	putMBREntry(mbr, 1, 0, 0x05, 32, 60)
	ebr1 := mbr[32*512:]
	putMBREntry(ebr1, 0, 0, 0x83, 2, 10)
	putMBREntry(ebr1, 1, 0, 0x05, 20, 30)
	ebr2 := mbr[52*512:]
	putMBREntry(ebr2, 0, 0, 0x82, 2, 8)

	loop := append([]byte(nil), mbr...)
	putMBREntry(loop[52*512:], 1, 0, 0x05, 0, 10) // the second EBR points back at the first

	gpt := gptDisk(1<<20, []gptPart{{efiSystem, "EFI System", 34, 100}, {linuxFS, "root", 101, 2047}})
	badCRC := append([]byte(nil), gpt...)
	badCRC[1024+40] ^= 1

	bootSector := make([]byte, 4096) // a FAT boot sector ends in 0x55AA too, with no table
	bootSector[0], bootSector[446], bootSector[510], bootSector[511] = 0xEB, 0x33, 0x55, 0xAA

	cases := []struct {
		name   string
		disk   []byte
		scheme Scheme
		parts  []Partition
		err    string
	}{
		{"mbr with logicals", mbr, MBR, []Partition{
			{Index: 1, Scheme: MBR, Start: 2 * 512, Size: 20 * 512, Type: "0x83"},
			{Index: 5, Scheme: MBR, Start: 34 * 512, Size: 10 * 512, Type: "0x83"},
			{Index: 6, Scheme: MBR, Start: 54 * 512, Size: 8 * 512, Type: "0x82"},
		}, ""},
		{"ebr loop", loop, MBR, nil, "loops"},
		{"gpt", gpt, GPT, []Partition{
			{Index: 1, Scheme: GPT, Start: 34 * 512, Size: 67 * 512, Type: efiSystem, Name: "EFI System"},
			{Index: 2, Scheme: GPT, Start: 101 * 512, Size: 1947 * 512, Type: linuxFS, Name: "root"},
		}, ""},
		{"gpt entries crc", badCRC, GPT, nil, "CRC mismatch"},
		{"no table", make([]byte, 4096), None, nil, "no partition table"},
		{"boot sector", bootSector, None, nil, "no partition table"},
		{"tiny", []byte{1, 2, 3}, None, nil, "no partition table"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			scheme, parts, err := Read(bytes.NewReader(c.disk), int64(len(c.disk)))
			if c.err != "" {
				if err == nil || !strings.Contains(err.Error(), c.err) {
					t.Fatalf("err = %v, want %q", err, c.err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if scheme != c.scheme || !reflect.DeepEqual(parts, c.parts) {
				t.Errorf("got %s %+v\nwant %s %+v", scheme, parts, c.scheme, c.parts)
			}
		})
	}
	if _, _, err := Read(bytes.NewReader(make([]byte, 4096)), 4096); !errors.Is(err, ErrNoTable) {
		t.Errorf("zeros: %v, want ErrNoTable", err)
	}
}

func TestLabel(t *testing.T) {
	for _, c := range []struct {
		p    Partition
		want string
	}{
		{Partition{Index: 1, Scheme: GPT, Name: "root"}, "p1 (GPT 'root')"},
		{Partition{Index: 3, Scheme: GPT}, "p3 (GPT)"},
		{Partition{Index: 5, Scheme: MBR, Type: "0x83"}, "p5 (MBR type 0x83)"},
	} {
		if got := c.p.Label(); got != c.want {
			t.Errorf("Label() = %q, want %q", got, c.want)
		}
	}
}

// TestSfdisk reads tables written by sfdisk (util-linux), when it is installed.
func TestSfdisk(t *testing.T) {
	sfdisk, err := exec.LookPath("sfdisk")
	if err != nil {
		if sfdisk, err = exec.LookPath("/usr/sbin/sfdisk"); err != nil {
			t.Skip("sfdisk not installed")
		}
	}
	for _, c := range []struct {
		script string
		want   []Partition
	}{
		{"label: gpt\nstart=2048, size=4096, type=" + efiSystem + ", name=\"EFI System Partition\"\nstart=6144, size=8192, type=" + linuxFS + ", name=\"root\"\n",
			[]Partition{{1, GPT, 2048 * 512, 4096 * 512, efiSystem, "EFI System Partition"}, {2, GPT, 6144 * 512, 8192 * 512, linuxFS, "root"}}},
		{"label: dos\nstart=2048, size=4096, type=83, bootable\nstart=6144, size=8192, type=5\nstart=8192, size=2048, type=82\n",
			[]Partition{{1, MBR, 2048 * 512, 4096 * 512, "0x83", ""}, {5, MBR, 8192 * 512, 2048 * 512, "0x82", ""}}},
	} {
		img := filepath.Join(t.TempDir(), "disk")
		if err := os.WriteFile(img, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Truncate(img, 16<<20); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sfdisk, "-q", "--no-reread", "--no-tell-kernel", img)
		cmd.Stdin = strings.NewReader(c.script)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("sfdisk: %v\n%s", err, out)
		}
		f, err := os.Open(img)
		if err != nil {
			t.Fatal(err)
		}
		_, parts, err := Read(f, 16<<20)
		f.Close()
		if err != nil || !reflect.DeepEqual(parts, c.want) {
			t.Errorf("got %+v, %v\nwant %+v", parts, err, c.want)
		}
	}
}

func FuzzRead(f *testing.F) {
	mbr := make([]byte, 64<<10)
	putMBREntry(mbr, 0, 0x80, 0x83, 2, 20)
	putMBREntry(mbr, 1, 0, 0x05, 32, 60)
	putMBREntry(mbr[32*512:], 0, 0, 0x83, 2, 10)
	putMBREntry(mbr[32*512:], 1, 0, 0x05, 20, 30)
	f.Add(mbr[:40<<10])
	f.Add(gptDisk(64<<10, []gptPart{{linuxFS, "root", 40, 100}})[:20<<10])
	f.Fuzz(func(t *testing.T, data []byte) {
		_, parts, _ := Read(bytes.NewReader(data), int64(len(data)))
		for _, p := range parts {
			if p.Size < 0 || p.Start < 0 {
				t.Fatalf("negative partition %+v", p)
			}
		}
	})
}
