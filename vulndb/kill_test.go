package vulndb

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/vigil-sec/vigil/model"
	"github.com/vigil-sec/vigil/vulndb/feed"
)

// killChild runs in the re-executed test binary: it starts replacing osv/Go with an endless feed,
// says so on stdout after many writes, and waits to be killed mid-transaction.
func killChild(path string) {
	ctx := context.Background()
	db, err := Open(ctx, path)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	_, err = db.ImportSource(ctx, "osv/Go", SourceMeta{}, func(ctx context.Context, sink feed.Sink) error {
		for i := 0; ; i++ {
			a := &model.Advisory{Source: "osv", ID: fmt.Sprintf("GO-2099-%05d", i), Ecosystem: "Go",
				Package: fmt.Sprintf("example.com/m%d", i), Details: string(make([]byte, 2048)),
				Ranges: []model.Range{{Type: "SEMVER", Events: []model.Event{{Introduced: "0"}}}}}
			if err := sink.Advisory(a); err != nil {
				return err
			}
			if i == 20000 { // well past the page cache: frames are in the WAL
				fmt.Println("writing")
			}
		}
	})
	fmt.Println("import returned:", err)
	os.Exit(3)
}

func TestKilledImportKeepsPreviousData(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "vuln.db")
	db, err := Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	importOSV(t, db, "osv/Go", fixture(t, "GO-2022-0969.json"))
	db.Close()

	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), "VIGIL_VULNDB_KILL_CHILD="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	line, err := bufio.NewReader(out).ReadString('\n')
	if err != nil || line != "writing\n" {
		cmd.Process.Kill()
		t.Fatalf("child said %q, %v", line, err)
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL: no cleanup, no rollback by the child
		t.Fatal(err)
	}
	cmd.Wait()
	if st, err := os.Stat(path + "-wal"); err == nil {
		t.Logf("WAL left by the killed import: %d bytes", st.Size())
	}

	db, err = Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	advs, err := db.Lookup(ctx, "Go", "stdlib")
	if err != nil || len(advs) != 1 || advs[0].ID != "GO-2022-0969" {
		t.Fatalf("previous data after kill: %v %v", ids(advs), err)
	}
	if advs, _ := db.Lookup(ctx, "Go", "example.com/m1"); len(advs) != 0 {
		t.Fatal("uncommitted rows visible after kill")
	}
	var check string
	if err := db.db.QueryRowContext(ctx, `PRAGMA integrity_check`).Scan(&check); err != nil || check != "ok" {
		t.Fatalf("integrity: %s %v", check, err)
	}
	// And the database takes the next import.
	importOSV(t, db, "osv/Go", fixture(t, "GO-2022-0969.json"), fixture(t, "GO-2024-2442.json"))
}
