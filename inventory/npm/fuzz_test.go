package npm

import (
	"os"
	"testing"
)

func seed(f *testing.F, files ...string) {
	for _, name := range files {
		data, err := os.ReadFile("testdata/" + name)
		if err != nil {
			f.Fatal(err)
		}
		f.Add(data)
	}
}

func FuzzPackageLock(f *testing.F) {
	seed(f, "package-lock-v1.json", "package-lock-v2.json")
	f.Add([]byte(`{"lockfileVersion": 3, "packages": {"node_modules/a": {"version": "1.0.0", "name": ""}}}`))
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = ParsePackageLock(data) })
}

func FuzzYarnLock(f *testing.F) {
	seed(f, "yarn-classic.lock", "yarn-berry.lock")
	f.Add([]byte("a@1:\n  version \"1\"\n"))
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = ParseYarnLock(data) })
}

func FuzzPnpmLock(f *testing.F) {
	seed(f, "pnpm-v5.yaml", "pnpm-v6.yaml", "pnpm-v9.yaml")
	f.Fuzz(func(t *testing.T, data []byte) { _, _ = ParsePnpmLock(data) })
}

func FuzzManifest(f *testing.F) {
	f.Add([]byte(`{"name": "lodash", "version": "4.17.15"}`))
	f.Fuzz(func(t *testing.T, data []byte) { _, _, _ = ParseManifest(data) })
}
