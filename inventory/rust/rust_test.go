package rust

import (
	"bytes"
	"compress/zlib"
	"context"
	"debug/elf"
	"debug/macho"
	"debug/pe"
	"encoding/binary"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"testing/fstest"
	"time"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

func names(pkgs []model.Package) []string {
	var out []string
	for _, p := range pkgs {
		s := p.Name + "@" + p.Version + " " + p.PURL
		if p.Dev {
			s += " dev"
		}
		if p.Ecosystem != model.EcoCrates {
			s += " WRONG ECOSYSTEM"
		}
		out = append(out, s)
	}
	slices.Sort(out)
	return out
}

func TestParseCargoLock(t *testing.T) {
	tests := []struct {
		file string
		want []string
	}{
		{"testdata/Cargo.lock.v3", []string{
			"aho-corasick@0.7.18 pkg:cargo/aho-corasick@0.7.18",
			"memchr@2.4.1 pkg:cargo/memchr@2.4.1",
			"regex-syntax@0.6.25 pkg:cargo/regex-syntax@0.6.25",
			"regex@1.5.4 pkg:cargo/regex@1.5.4",
			"serde@1.0.130 pkg:cargo/serde@1.0.130",
			"tokio@1.12.0 pkg:cargo/tokio@1.12.0",
		}},
		{"testdata/Cargo.lock.v1", []string{"serde@1.0.130 pkg:cargo/serde@1.0.130"}},
		{"testdata/Cargo.lock.v4", []string{"regex@1.5.4 pkg:cargo/regex@1.5.4"}},
	}
	for _, tt := range tests {
		b, err := os.ReadFile(tt.file)
		if err != nil {
			t.Fatal(err)
		}
		pkgs, err := ParseCargoLock(b)
		if err != nil {
			t.Fatalf("%s: %v", tt.file, err)
		}
		if got := names(pkgs); !slices.Equal(got, tt.want) {
			t.Errorf("%s:\ngot  %q\nwant %q", tt.file, got, tt.want)
		}
	}
	for _, bad := range []string{"[[package]\nname=", "version = 9\n", "[[package]]\nname = \"x y\"\nversion = \"1.0.0\"\nsource = \"" + cratesIORegistry + "\"\n"} {
		if _, err := ParseCargoLock([]byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// auditDoc is the JSON cargo-auditable embeds for a binary "hello" depending on serde (with the
// serde_derive proc macro, a build-time dependency), regex and a path dependency.
const auditDoc = `{"packages":[
{"name":"hello","version":"0.1.0","source":"local","dependencies":[1,2,4],"root":true},
{"name":"regex","version":"1.5.4","source":"crates.io","dependencies":[3]},
{"name":"serde","version":"1.0.130","source":"crates.io","dependencies":[5]},
{"name":"regex-syntax","version":"0.6.25","source":"crates.io"},
{"name":"util","version":"0.1.0","source":"local"},
{"name":"serde_derive","version":"1.0.130","source":"crates.io","kind":"build"},
{"name":"private","version":"1.0.0","source":"registry"}
]}`

var wantAudit = []string{
	"regex-syntax@0.6.25 pkg:cargo/regex-syntax@0.6.25",
	"regex@1.5.4 pkg:cargo/regex@1.5.4",
	"serde@1.0.130 pkg:cargo/serde@1.0.130",
	"serde_derive@1.0.130 pkg:cargo/serde_derive@1.0.130 dev",
}

func zlibBytes(t testing.TB, s string) []byte {
	var b bytes.Buffer
	w := zlib.NewWriter(&b)
	w.Write([]byte(s))
	w.Close()
	return b.Bytes()
}

func le(t testing.TB, b *bytes.Buffer, v any) {
	if err := binary.Write(b, binary.LittleEndian, v); err != nil {
		t.Fatal(err)
	}
}

// buildELF writes a minimal ELF64 file whose only content section is named sec.
func buildELF(t testing.TB, sec string, data []byte) []byte {
	shstr := append([]byte("\x00"+sec+"\x00.shstrtab\x00"), make([]byte, 8)...)
	dataOff := uint64(64)
	strOff := dataOff + uint64(len(data))
	shOff := (strOff + uint64(len(shstr)) + 7) &^ 7
	var b bytes.Buffer
	h := elf.Header64{Type: uint16(elf.ET_EXEC), Machine: uint16(elf.EM_X86_64), Version: 1, Shoff: shOff,
		Ehsize: 64, Phentsize: 56, Shentsize: 64, Shnum: 3, Shstrndx: 2}
	copy(h.Ident[:], elf.ELFMAG)
	h.Ident[elf.EI_CLASS], h.Ident[elf.EI_DATA], h.Ident[elf.EI_VERSION] = byte(elf.ELFCLASS64), byte(elf.ELFDATA2LSB), 1
	le(t, &b, h)
	b.Write(data)
	b.Write(shstr)
	b.Write(make([]byte, int(shOff)-b.Len()))
	le(t, &b, elf.Section64{})
	le(t, &b, elf.Section64{Name: 1, Type: uint32(elf.SHT_PROGBITS), Off: dataOff, Size: uint64(len(data)), Addralign: 1})
	le(t, &b, elf.Section64{Name: uint32(2 + len(sec)), Type: uint32(elf.SHT_STRTAB), Off: strOff, Size: uint64(len(shstr)), Addralign: 1})
	return b.Bytes()
}

// buildPE writes a minimal PE file (no optional header) with one section.
func buildPE(t testing.TB, sec string, data []byte) []byte {
	var b bytes.Buffer
	dos := make([]byte, 0x40)
	copy(dos, "MZ")
	binary.LittleEndian.PutUint32(dos[0x3c:], 0x40)
	b.Write(dos)
	b.WriteString("PE\x00\x00")
	le(t, &b, pe.FileHeader{Machine: pe.IMAGE_FILE_MACHINE_AMD64, NumberOfSections: 1, Characteristics: pe.IMAGE_FILE_EXECUTABLE_IMAGE})
	off := uint32(b.Len() + 40)
	sh := pe.SectionHeader32{VirtualSize: uint32(len(data)), VirtualAddress: 0x1000, SizeOfRawData: uint32(len(data)), PointerToRawData: off}
	copy(sh.Name[:], sec)
	le(t, &b, sh)
	b.Write(data)
	return b.Bytes()
}

// buildMachO writes a minimal 64-bit Mach-O file with one __DATA segment holding one section.
func buildMachO(t testing.TB, sec string, data []byte) []byte {
	var b bytes.Buffer
	const segLen, secLen = 72, 80
	le(t, &b, macho.FileHeader{Magic: macho.Magic64, Cpu: macho.CpuAmd64, Type: macho.TypeExec, Ncmd: 1, Cmdsz: segLen + secLen})
	le(t, &b, uint32(0)) // reserved (64-bit header)
	off := uint64(32 + segLen + secLen)
	seg := macho.Segment64{Cmd: macho.LoadCmdSegment64, Len: segLen + secLen, Offset: off, Filesz: uint64(len(data)), Memsz: uint64(len(data)), Nsect: 1}
	copy(seg.Name[:], "__DATA")
	le(t, &b, seg)
	s := macho.Section64{Size: uint64(len(data)), Offset: uint32(off)}
	copy(s.Name[:], sec)
	copy(s.Seg[:], "__DATA")
	le(t, &b, s)
	b.Write(data)
	return b.Bytes()
}

func TestAuditData(t *testing.T) {
	z := zlibBytes(t, auditDoc)
	for name, bin := range map[string][]byte{
		"elf":   buildELF(t, ".dep-v0", z),
		"pe":    buildPE(t, ".dep-v0", z),
		"macho": buildMachO(t, ".dep-v0", z),
	} {
		t.Run(name, func(t *testing.T) {
			data, err := AuditData(bytes.NewReader(bin))
			if err != nil {
				t.Fatal(err)
			}
			pkgs, err := ParseAuditJSON(data)
			if err != nil {
				t.Fatal(err)
			}
			if got := names(pkgs); !slices.Equal(got, wantAudit) {
				t.Errorf("got  %q\nwant %q", got, wantAudit)
			}
		})
	}
	// Binaries without audit data, and non-binaries, give nothing and no error.
	for name, bin := range map[string][]byte{
		"elf without section": buildELF(t, ".text", []byte{0x90}),
		"pe without section":  buildPE(t, ".text", []byte{0x90}),
		"shell script":        []byte("#!/bin/sh\nexit 0\n"),
		"java class":          {0xca, 0xfe, 0xba, 0xbe, 0, 0, 0, 0x34},
	} {
		if data, err := AuditData(bytes.NewReader(bin)); data != nil || err != nil {
			t.Errorf("%s: data=%q err=%v", name, data, err)
		}
	}
	if _, err := AuditData(bytes.NewReader(buildELF(t, ".dep-v0", []byte("not zlib")))); err == nil || !strings.Contains(err.Error(), ".dep-v0 section") {
		t.Errorf("corrupt section: err = %v", err)
	}
	bomb := zlibBytes(t, strings.Repeat(" ", maxAuditJSONSize+1))
	if _, err := AuditData(bytes.NewReader(buildELF(t, ".dep-v0", bomb))); err == nil || !strings.Contains(err.Error(), "file too large") {
		t.Errorf("zlib bomb: err = %v", err)
	}
}

func TestEngine(t *testing.T) {
	v3, _ := os.ReadFile("testdata/Cargo.lock.v3")
	m := fstest.MapFS{
		"usr/local/bin/hello":   {Data: append(buildELF(t, ".dep-v0", zlibBytes(t, auditDoc)), make([]byte, 2048)...), Mode: 0o755},
		"usr/local/bin/plain":   {Data: buildELF(t, ".text", make([]byte, 2048)), Mode: 0o755},
		"usr/local/bin/broken":  {Data: buildELF(t, ".dep-v0", append(zlibBytes(t, `{"packages":`), make([]byte, 1024)...)), Mode: 0o755},
		"usr/local/lib/data.so": {Data: append(buildELF(t, ".dep-v0", zlibBytes(t, auditDoc)), make([]byte, 2048)...), Mode: 0o644}, // not executable: not read
		"src/hello/Cargo.lock":  {Data: v3},
	}
	reg := inventory.NewRegistry(NewCargoLock(), NewAuditable())
	inv, err := inventory.New(nil, reg, inventory.Config{Workers: 1}).Run(context.Background(), m, model.SourceInfo{Kind: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	count := map[string]int{}
	for _, p := range inv.Packages {
		count[p.Locations[0]]++
	}
	if count["/src/hello/Cargo.lock"] != 6 || count["/usr/local/bin/hello"] != 4 || len(count) != 2 {
		t.Errorf("packages per location: %v", count)
	}
	bin := inv.Extractors[1]
	if bin.Files != 3 || len(bin.Errors) != 1 || !strings.Contains(bin.Errors[0].Error, "/usr/local/bin/broken: bad audit data") {
		t.Errorf("binary status %+v", bin)
	}
}

func TestRequired(t *testing.T) {
	a := NewAuditable()
	for _, tt := range []struct {
		name string
		mode fs.FileMode
		size int64
		want bool
	}{
		{"usr/bin/rg", 0o755, 5 << 20, true},
		{"app/tool.exe", 0o644, 5 << 20, true},
		{"usr/share/doc/README", 0o644, 5 << 20, false},
		{"usr/bin/tiny", 0o755, 100, false},
	} {
		if got := a.Required(tt.name, info{tt.mode, tt.size}); got != tt.want {
			t.Errorf("Required(%q) = %v", tt.name, got)
		}
	}
}

type info struct {
	mode fs.FileMode
	size int64
}

func (info) Name() string        { return "" }
func (i info) Size() int64       { return i.size }
func (i info) Mode() fs.FileMode { return i.mode }
func (info) ModTime() time.Time  { return time.Time{} }
func (i info) IsDir() bool       { return i.mode.IsDir() }
func (info) Sys() any            { return nil }

func FuzzParseCargoLock(f *testing.F) {
	for _, n := range []string{"testdata/Cargo.lock.v1", "testdata/Cargo.lock.v3", "testdata/Cargo.lock.v4"} {
		b, _ := os.ReadFile(n)
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseCargoLock(b) })
}

func FuzzParseAuditJSON(f *testing.F) {
	f.Add([]byte(auditDoc))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = ParseAuditJSON(b) })
}

func FuzzAuditData(f *testing.F) {
	z := zlibBytes(f, auditDoc)
	f.Add(buildELF(f, ".dep-v0", z))
	f.Add(buildPE(f, ".dep-v0", z))
	f.Add(buildMachO(f, ".dep-v0", z))
	f.Fuzz(func(t *testing.T, b []byte) { _, _ = AuditData(bytes.NewReader(b)) })
}

// TestAuditDataRealELF adds a .dep-v0 section to a real executable of the host with objcopy, as
// cargo-auditable's linker step does, so that a full section table (dozens of sections, program
// headers) is read, not only the minimal files built above.
func TestAuditDataRealELF(t *testing.T) {
	objcopy, err := exec.LookPath("objcopy")
	if err != nil {
		t.Skip("no objcopy")
	}
	src := "/bin/true"
	if _, err := os.Stat(src); err != nil {
		t.Skip("no /bin/true")
	}
	dir := t.TempDir()
	sec := filepath.Join(dir, "dep-v0.bin")
	if err := os.WriteFile(sec, zlibBytes(t, auditDoc), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(dir, "hello")
	if b, err := exec.Command(objcopy, "--add-section", ".dep-v0="+sec, src, out).CombinedOutput(); err != nil {
		t.Skipf("objcopy cannot rewrite %s: %v %s", src, err, b)
	}
	f, err := os.Open(out)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	data, err := AuditData(f)
	if err != nil {
		t.Fatal(err)
	}
	pkgs, err := ParseAuditJSON(data)
	if err != nil {
		t.Fatal(err)
	}
	if got := names(pkgs); !slices.Equal(got, wantAudit) {
		t.Errorf("got  %q\nwant %q", got, wantAudit)
	}
	// The untouched executable has no audit data.
	orig, _ := os.Open(src)
	defer orig.Close()
	if data, err := AuditData(orig); data != nil || err != nil {
		t.Errorf("plain /bin/true: %q %v", data, err)
	}
}
