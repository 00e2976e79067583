package java

import (
	"bufio"
	"bytes"
	"regexp"
	"strings"
)

// Properties is a parsed pom.properties: the three coordinates Maven writes into every jar it builds
// (META-INF/maven/<groupId>/<artifactId>/pom.properties).
type Properties struct {
	GroupID, ArtifactID, Version string
}

// ParseProperties reads the Java .properties subset that pom.properties uses: "key=value" or
// "key: value" lines, "#" and "!" comments, backslash line continuations. Unknown keys are ignored.
func ParseProperties(b []byte) Properties {
	var p Properties
	var pending strings.Builder
	sc := bufio.NewScanner(bytes.NewReader(b))
	sc.Buffer(make([]byte, 0, 4096), 1<<20)
	for sc.Scan() {
		line := strings.TrimLeft(sc.Text(), " \t\f")
		if pending.Len() == 0 && (line == "" || line[0] == '#' || line[0] == '!') {
			continue
		}
		// An odd number of trailing backslashes continues the logical line.
		if n := len(line) - len(strings.TrimRight(line, `\`)); n%2 == 1 {
			pending.WriteString(line[:len(line)-1])
			continue
		}
		pending.WriteString(line)
		key, val := splitProperty(pending.String())
		pending.Reset()
		switch key {
		case "groupId":
			p.GroupID = val
		case "artifactId":
			p.ArtifactID = val
		case "version":
			p.Version = val
		}
	}
	return p
}

func splitProperty(line string) (key, val string) {
	i := strings.IndexAny(line, "=: \t")
	if i < 0 {
		return line, ""
	}
	key = line[:i]
	rest := strings.TrimLeft(line[i:], " \t")
	if rest != "" && (rest[0] == '=' || rest[0] == ':') {
		rest = rest[1:]
	}
	return key, strings.TrimSpace(rest)
}

// Manifest holds the main section of a META-INF/MANIFEST.MF.
type Manifest map[string]string

// ParseManifest reads the main section of a JAR manifest: "Name: value" lines, continuation lines
// that start with one space, ending at the first empty line (per-entry sections follow it, and in
// signed jars they are most of the file).
func ParseManifest(b []byte) Manifest {
	m := Manifest{}
	var last string
	for len(b) > 0 {
		var line []byte
		if i := bytes.IndexByte(b, '\n'); i >= 0 {
			line, b = b[:i], b[i+1:]
		} else {
			line, b = b, nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			break
		}
		if line[0] == ' ' {
			if last != "" {
				m[last] += string(line[1:])
			}
			continue
		}
		i := bytes.IndexByte(line, ':')
		if i <= 0 {
			last = ""
			continue
		}
		last = string(line[:i])
		m[last] = strings.TrimSpace(string(line[i+1:]))
	}
	return m
}

// fileNameRE splits "name-1.2.3.jar" style names: the version starts at the first "-" followed by a
// digit ("commons-lang3-3.12.0", "guava-31.1-jre", "log4j-core-2.14.1").
var fileNameRE = regexp.MustCompile(`^(.+?)-(\d[0-9A-Za-z.+_\-]*)$`)

// splitFileName returns the artifact and version a jar's file name suggests; version is "" for
// unversioned names ("snakeyaml.jar", as Debian ships them).
func splitFileName(base string) (artifact, version string) {
	stem := base
	if i := strings.LastIndexByte(stem, '.'); i > 0 {
		stem = stem[:i]
	}
	if m := fileNameRE.FindStringSubmatch(stem); m != nil {
		return m[1], m[2]
	}
	return stem, ""
}

// fromManifest derives coordinates for a jar without pom.properties. The version comes from
// Implementation-Version, then the file name, then Bundle-Version and Specification-Version (OSGi
// versions like "31.1.0.jre" are not Maven versions, so the file name wins over them). The artifact is
// the file name's, else Implementation-Title when it is a single token, else Bundle-SymbolicName. The
// groupId is Implementation-Vendor-Id only (what maven-jar-plugin writes there); OSGi symbolic names
// are not split into a guessed groupId, as that is wrong too often (com.google.guava:guava). Failing
// those, a few well-known Gradle-built families get their groupId from knownGroups, checked with
// hasPackage (whether the archive holds entries under a directory); hasPackage may be nil.
func fromManifest(m Manifest, base string, hasPackage func(dir string) bool) (Properties, bool) {
	artifact, fileVersion := splitFileName(base)
	p := Properties{GroupID: m["Implementation-Vendor-Id"], ArtifactID: artifact}
	for _, v := range []string{m["Implementation-Version"], fileVersion, m["Bundle-Version"], m["Specification-Version"]} {
		if v = strings.TrimSpace(v); v != "" && !strings.ContainsAny(v, " \t$") {
			p.Version = v
			break
		}
	}
	if p.ArtifactID == "" {
		if t := m["Implementation-Title"]; t != "" && !strings.ContainsAny(t, " \t") {
			p.ArtifactID = t
		} else if s := m["Bundle-SymbolicName"]; s != "" {
			p.ArtifactID = strings.TrimSpace(strings.SplitN(s, ";", 2)[0])
		}
	}
	if !validCoord(p.GroupID) {
		p.GroupID = ""
	}
	if p.GroupID == "" && hasPackage != nil {
		if g, pkg := knownGroup(p.ArtifactID); g != "" && hasPackage(pkg) {
			p.GroupID = g
		}
	}
	return p, p.ArtifactID != "" && p.Version != "" && validCoord(p.ArtifactID)
}

// knownGroups names the groupIds of widely deployed artifacts built with Gradle, which writes no
// pom.properties and, for these, no groupId in the manifest either (spring-core-5.3.18.jar holds only
// Implementation-Title and -Version). Longest prefix first. A guess is used only when the jar holds
// classes under the family's package (org/springframework/...), so a same-named jar of another
// project is not given it.
var knownGroups = []struct{ prefix, group, pkg string }{
	{"spring-boot", "org.springframework.boot", "org/springframework/boot/"},
	{"spring-security-", "org.springframework.security", "org/springframework/security/"},
	{"spring-", "org.springframework", "org/springframework/"},
	{"kotlin-", "org.jetbrains.kotlin", "kotlin/"},
	{"okhttp", "com.squareup.okhttp3", "okhttp3/"},
	{"asm", "org.ow2.asm", "org/objectweb/asm/"},
}

// knownGroup returns the family's groupId and the package directory its classes live in.
func knownGroup(artifact string) (group, pkg string) {
	for _, k := range knownGroups {
		if artifact == k.prefix || strings.HasPrefix(artifact, k.prefix) && (strings.HasSuffix(k.prefix, "-") || strings.HasPrefix(artifact[len(k.prefix):], "-")) {
			return k.group, k.pkg
		}
	}
	return "", ""
}

// repoLayoutRE matches a jar in a Maven repository layout (~/.m2/repository, Debian's
// /usr/share/maven-repo): <root>/<group path>/<artifact>/<version>/<artifact>-<version>[-classifier].jar.
var repoLayoutRE = regexp.MustCompile(`(?:^|/)(?:\.m2/repository|maven-repo)/((?:[^/]+/)+?)([^/]+)/([^/]+)/([^/]+)$`)

// fromRepoLayout returns the coordinates a Maven repository path gives, when the file name agrees
// with the artifact and version directories.
func fromRepoLayout(p string) (Properties, bool) {
	m := repoLayoutRE.FindStringSubmatch(p)
	if m == nil || !strings.HasPrefix(m[4], m[2]+"-"+m[3]) {
		return Properties{}, false
	}
	g := strings.ReplaceAll(strings.TrimSuffix(m[1], "/"), "/", ".")
	pr := Properties{GroupID: g, ArtifactID: m[2], Version: m[3]}
	return pr, pr.complete()
}

// validCoord rejects values that cannot be Maven coordinates (unresolved "${...}" placeholders,
// spaces, separators), which broken builds leave in manifests and pom.properties.
func validCoord(s string) bool {
	return s != "" && !strings.ContainsAny(s, " \t/\\:${}\"'<>")
}
