package vulndb

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestBundleRoundTrip(t *testing.T) {
	ctx := context.Background()
	src := newDB(t)
	importOSV(t, src, "osv/Go", fixture(t, "GO-2022-0969.json"))
	importOSV(t, src, "osv/Maven", fixture(t, "GHSA-jfh8-c2jp-5v3q.json"))
	bundle := filepath.Join(t.TempDir(), "vulndb.bundle")
	m, err := src.Export(ctx, bundle)
	if err != nil {
		t.Fatal(err)
	}
	if m.Version != 2 || len(m.Sources) != 2 || len(m.SHA256) != 64 {
		t.Fatalf("manifest = %+v", m)
	}

	// The target already has (other) data and a warm index.
	dst := newDB(t)
	importOSV(t, dst, "osv/PyPI", fixture(t, "PYSEC-2021-59.json"))
	if advs, _ := dst.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 1 {
		t.Fatal("setup")
	}
	if _, err := dst.Import(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	if advs, _ := dst.Lookup(ctx, "Go", "stdlib"); len(advs) != 1 {
		t.Error("bundle data not visible after import")
	}
	if advs, _ := dst.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 0 {
		t.Error("index still serves the replaced database")
	}
	if v, _ := dst.Version(ctx); v != 2 {
		t.Errorf("version = %d", v)
	}
	// The bundle carries its database's lineage: the two files are now one database at one version.
	srcLineage, _, err := src.Lineage(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if l, v, err := dst.Lineage(ctx); err != nil || l != srcLineage || v != 2 {
		t.Errorf("lineage after import = %q %d %v, want the exporter's %q at 2", l, v, err, srcLineage)
	}
	// The swapped-in database is writable as usual.
	importOSV(t, dst, "osv/PyPI", fixture(t, "PYSEC-2021-59.json"))
	if advs, _ := dst.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 1 {
		t.Error("import after swap")
	}
}

func TestBundleRejectsDamage(t *testing.T) {
	ctx := context.Background()
	src := newDB(t)
	importOSV(t, src, "osv/Go", fixture(t, "GO-2022-0969.json"))
	dir := t.TempDir()
	bundle := filepath.Join(dir, "b")
	if _, err := src.Export(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	good, _ := os.ReadFile(bundle)

	dst := newDB(t)
	importOSV(t, dst, "osv/PyPI", fixture(t, "PYSEC-2021-59.json"))
	cases := map[string][]byte{
		"truncated": good[:len(good)/2],
		"empty":     {},
		"not gzip":  []byte("SQLite format 3\x00"),
	}
	// Flip a byte deep inside the compressed database: gzip's CRC or our SHA-256 must catch it.
	flipped := append([]byte(nil), good...)
	flipped[len(flipped)*2/3] ^= 0x55
	cases["flipped"] = flipped
	for name, data := range cases {
		p := filepath.Join(dir, name)
		os.WriteFile(p, data, 0o644)
		if _, err := dst.Import(ctx, p); err == nil {
			t.Errorf("%s bundle accepted", name)
		}
		if advs, _ := dst.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 1 {
			t.Fatalf("%s: current database damaged", name)
		}
	}
	ents, _ := os.ReadDir(filepath.Dir(dst.Path()))
	for _, e := range ents {
		if strings.HasPrefix(e.Name(), ".vulndb-import") {
			t.Errorf("temporary file left behind: %s", e.Name())
		}
	}
}

func TestBundleImportRefusedWhileInUse(t *testing.T) {
	ctx := context.Background()
	src := newDB(t)
	importOSV(t, src, "osv/Go", fixture(t, "GO-2022-0969.json"))
	bundle := filepath.Join(t.TempDir(), "b")
	if _, err := src.Export(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "vuln.db")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	importOSV(t, a, "osv/PyPI", fixture(t, "PYSEC-2021-59.json"))
	other, err := Open(ctx, path) // another process holding the file
	if err != nil {
		t.Fatal(err)
	}
	if _, err := other.Lookup(ctx, "PyPI", "urllib3"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Import(ctx, bundle); !errors.Is(err, ErrInUse) {
		t.Fatalf("err = %v, want ErrInUse", err)
	}
	if advs, _ := a.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 1 {
		t.Fatal("database unusable after a refused import")
	}
	other.Close()
	if _, err := a.Import(ctx, bundle); err != nil {
		t.Fatal(err)
	}
	if advs, _ := a.Lookup(ctx, "Go", "stdlib"); len(advs) != 1 {
		t.Fatal("bundle not imported once the file was free")
	}
}

// A database gets its lineage when it is created and keeps it when reopened; two databases built
// apart have different ones even with the same contents and version.
func TestLineage(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "v.sqlite")
	a, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	importOSV(t, a, "osv/Go", fixture(t, "GO-2022-0969.json"))
	la, va, err := a.Lineage(ctx)
	if err != nil || len(la) != 32 || va != 1 {
		t.Fatalf("lineage = %q %d %v", la, va, err)
	}
	a.Close()
	a, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	if l, _, _ := a.Lineage(ctx); l != la {
		t.Errorf("lineage after reopening = %q, want %q", l, la)
	}
	b := newDB(t)
	importOSV(t, b, "osv/Go", fixture(t, "GO-2022-0969.json"))
	if lb, vb, _ := b.Lineage(ctx); lb == la || vb != va {
		t.Errorf("a database built apart: lineage %q version %d (the first: %q %d)", lb, vb, la, va)
	}
	// A file whose lineage was never recorded (made before lineages existed) gets one on first read.
	if _, err := a.db.ExecContext(ctx, `DELETE FROM vdb_meta WHERE key='lineage'`); err != nil {
		t.Fatal(err)
	}
	if l, v, err := a.Lineage(ctx); err != nil || len(l) != 32 || l == la || v != va {
		t.Errorf("lineage of a file without one = %q %d %v", l, v, err)
	}
}

// tarGz builds a gzipped tar of name/content pairs, for hand-made bundles.
func tarGz(t testing.TB, members ...string) []byte {
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for i := 0; i+1 < len(members); i += 2 {
		if err := tw.WriteHeader(&tar.Header{Name: members[i], Mode: 0o644, Size: int64(len(members[i+1])), Typeflag: tar.TypeReg}); err != nil {
			t.Fatal(err)
		}
		tw.Write([]byte(members[i+1]))
	}
	tw.Close()
	zw.Close()
	return buf.Bytes()
}

// A bundle is untrusted input (a file handed to `vigil db import`, or the one a server process
// fetches from the store): whatever it holds, Import either takes a whole valid database or
// refuses it and keeps the current one, without a panic.
func FuzzBundleImport(f *testing.F) {
	ctx := context.Background()
	src := newDB(f)
	importOSV(f, src, "osv/Go", fixture(f, "GO-2022-0969.json"))
	good := filepath.Join(f.TempDir(), "good")
	if _, err := src.Export(ctx, good); err != nil {
		f.Fatal(err)
	}
	b, _ := os.ReadFile(good)
	f.Add(b)
	f.Add(b[:len(b)-9])
	f.Add(tarGz(f, "manifest.json", `{"format":"vigil-vulndb-bundle","schema":2,"size":5,"sha256":"00"}`, "vulndb.sqlite", "hello"))
	f.Add(tarGz(f, "manifest.json", `{"format":"vigil-vulndb-bundle","schema":2,"size":99999999999}`))
	f.Add(tarGz(f, "vulndb.sqlite", "SQLite format 3\x00", "manifest.json", "{}"))
	f.Fuzz(func(t *testing.T, data []byte) {
		dst := newDB(t)
		importOSV(t, dst, "osv/PyPI", fixture(t, "PYSEC-2021-59.json"))
		p := filepath.Join(t.TempDir(), "bundle")
		if err := os.WriteFile(p, data, 0o600); err != nil {
			t.Fatal(err)
		}
		m, err := dst.Import(ctx, p)
		if err != nil {
			if advs, _ := dst.Lookup(ctx, "PyPI", "urllib3"); len(advs) != 1 {
				t.Fatalf("refused bundle (%v) damaged the current database", err)
			}
			return
		}
		if _, v, err := dst.Lineage(ctx); err != nil || v != m.Version {
			t.Fatalf("imported bundle reads as version %d (%v), its manifest says %d", v, err, m.Version)
		}
	})
}
