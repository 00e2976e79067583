package java

import (
	"bytes"
	"context"
	"testing"
)

func FuzzParseProperties(f *testing.F) {
	f.Add([]byte("#Created by Apache Maven 3.8.4\nversion=2.14.1\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\n"))
	f.Add([]byte("groupId : a\\\n  b\r\nversion\\\\\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		p := completeProperties(ParseProperties(b), "META-INF/maven/g/a/pom.properties")
		if p.complete() {
			_ = p.pkg("/x.jar")
		}
	})
}

func FuzzParseManifest(f *testing.F) {
	f.Add([]byte("Manifest-Version: 1.0\r\nImplementation-Version: 2.14.1\r\nImplementation-Vendor-Id: org.apache.logging.log4j\r\n continued\r\n\r\nName: x\r\n"))
	f.Add([]byte(" leading continuation\n:\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		m := ParseManifest(b)
		if p, ok := fromManifest(m, "log4j-api-2.14.1.jar", nil); ok && (p.ArtifactID == "" || p.Version == "") {
			t.Fatalf("incomplete coordinates accepted: %+v", p)
		}
	})
}

func FuzzParseGradleLock(f *testing.F) {
	f.Add([]byte("# comment\ncom.fasterxml.jackson.core:jackson-databind:2.9.10=compileClasspath\nempty=\n"))
	f.Add([]byte("a:b:c\n::=\n"))
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = ParseGradleLock(b)
	})
}

// FuzzWalk feeds arbitrary bytes to the nested archive walker, with small limits.
func FuzzWalk(f *testing.F) {
	spring := libJar(f, "org.springframework", "spring-core", "5.3.18")
	f.Add(spring)
	f.Add(makeZip(f, pomProps("com.example", "demo", "1.0"), entry{name: "BOOT-INF/lib/spring-core-5.3.18.jar", data: spring, store: true},
		entry{name: "WEB-INF/lib/x.jar", data: spring}))
	f.Add([]byte("PK\x05\x06\x00\x00\x00\x00\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00"))
	a := NewArchiveWithLimits(Limits{MaxDepth: 3, MaxEntries: 1000, MaxArchives: 50, MaxNested: 1 << 20, MaxInflated: 4 << 20})
	f.Fuzz(func(t *testing.T, b []byte) {
		_, _ = a.Walk(context.Background(), bytes.NewReader(b), int64(len(b)), "/f.jar")
	})
}
