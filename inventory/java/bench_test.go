package java

import (
	"archive/zip"
	"bufio"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/vigil-sec/vigil/inventory"
	"github.com/vigil-sec/vigil/model"
)

// benchTargets is where /work/shared/bench/70-java.sh builds the Java corpus; VIGIL_BENCH overrides.
func benchTargets() string {
	if d := os.Getenv("VIGIL_BENCH"); d != "" {
		return filepath.Join(d, "targets")
	}
	home, _ := os.UserHomeDir()
	return filepath.Join(home, "vigil-bench", "targets")
}

type truthRow struct{ jar, name, version string }

func readTruth(t *testing.T, targets string) []truthRow {
	f, err := os.Open(filepath.Join(targets, "ground-truth", "java.tsv"))
	if err != nil {
		t.Skipf("no Java ground truth: %v", err)
	}
	defer f.Close()
	var rows []truthRow
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		c := strings.Split(sc.Text(), "\t")
		if len(c) != 4 || c[0] == "jar" {
			continue
		}
		rows = append(rows, truthRow{c[0], c[1] + ":" + c[2], c[3]})
	}
	if len(rows) == 0 {
		t.Skip("empty Java ground truth")
	}
	return rows
}

// TestBenchGroundTruth compares with the corpus: every pom.properties of the Debian jars, the same jars
// nested in the fat jar (plus its own coordinates) and in the function zip; nothing else.
func TestBenchGroundTruth(t *testing.T) {
	targets := benchTargets()
	truth := readTruth(t, targets)
	reg := inventory.NewRegistry(NewArchive())
	eng := inventory.New(nil, reg, inventory.Config{Workers: 1})

	inv, err := eng.Run(context.Background(), os.DirFS(filepath.Join(targets, "java")), model.SourceInfo{Kind: "dir"})
	if err != nil {
		t.Fatal(err)
	}
	if st := inv.Extractors[0]; st.Status != model.StatusOK {
		t.Fatalf("status %+v", st)
	}
	got := map[string]bool{}
	for _, p := range inv.Packages {
		got[p.Locations[0]+" "+p.Name+" "+p.Version] = true
	}
	want := map[string]bool{"/app-fat.jar com.example.bench:bench-app 0.0.1": true}
	nested := map[string]bool{}
	for _, r := range truth {
		want["/"+strings.TrimPrefix(r.jar, "java/")+" "+r.name+" "+r.version] = true
		a := r.name[strings.IndexByte(r.name, ':')+1:]
		want["/app-fat.jar!/BOOT-INF/lib/"+a+"-"+r.version+".jar "+r.name+" "+r.version] = true
		nested["/lib/"+a+"-"+r.version+".jar "+r.name+" "+r.version] = true
	}
	compareSets(t, "java dir", got, want)

	zr, err := zip.OpenReader(filepath.Join(targets, "function-java.zip"))
	if err != nil {
		t.Skipf("no function-java.zip: %v", err)
	}
	defer zr.Close()
	inv, err = eng.Run(context.Background(), zr, model.SourceInfo{Kind: "archive"})
	if err != nil {
		t.Fatal(err)
	}
	got = map[string]bool{}
	for _, p := range inv.Packages {
		got[p.Locations[0]+" "+p.Name+" "+p.Version] = true
	}
	compareSets(t, "function-java.zip", got, nested)
}

func compareSets(t *testing.T, what string, got, want map[string]bool) {
	t.Helper()
	for k := range want {
		if !got[k] {
			t.Errorf("%s: missing %s", what, k)
		}
	}
	for k := range got {
		if !want[k] {
			t.Errorf("%s: unexpected %s", what, k)
		}
	}
	t.Logf("%s: %d expected, %d found", what, len(want), len(got))
}

// BenchmarkWalkFatJar walks the corpus's Spring-Boot-style fat jar (11 nested jars, 8 MiB).
func BenchmarkWalkFatJar(b *testing.B) {
	f, err := os.Open(filepath.Join(benchTargets(), "java", "app-fat.jar"))
	if err != nil {
		b.Skipf("no fat jar: %v", err)
	}
	defer f.Close()
	fi, _ := f.Stat()
	a := NewArchive()
	b.ReportAllocs()
	for b.Loop() {
		pkgs, err := a.Walk(context.Background(), f, fi.Size(), "/app-fat.jar")
		if err != nil || len(pkgs) != 12 {
			b.Fatalf("%d packages, %v", len(pkgs), err)
		}
	}
}
