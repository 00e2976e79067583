package java

import (
	"slices"
	"testing"
)

func TestParseProperties(t *testing.T) {
	tests := []struct {
		in   string
		want Properties
	}{
		{"#Created by Apache Maven 3.8.4\nversion=2.14.1\ngroupId=org.apache.logging.log4j\nartifactId=log4j-core\n",
			Properties{"org.apache.logging.log4j", "log4j-core", "2.14.1"}},
		{"groupId : com.fasterxml.jackson.core\r\nartifactId:jackson-databind\r\nversion 2.9.10\r\n",
			Properties{"com.fasterxml.jackson.core", "jackson-databind", "2.9.10"}},
		{"! comment\n  groupId=org.spring\\\n  framework\nartifactId=spring-core\nversion=5.3.18\n",
			Properties{"org.springframework", "spring-core", "5.3.18"}},
		{"m2e.projectName=demo\nversion=\n", Properties{}},
	}
	for _, tt := range tests {
		if got := ParseProperties([]byte(tt.in)); got != tt.want {
			t.Errorf("ParseProperties(%q) = %+v, want %+v", tt.in, got, tt.want)
		}
	}
}

func TestParseManifestStopsAtMainSection(t *testing.T) {
	m := ParseManifest([]byte("Manifest-Version: 1.0\r\nImplementation-Version: 5.3.18\r\n\r\nName: org/springframework/core/\r\nImplementation-Version: 9.9.9\r\n"))
	if m["Implementation-Version"] != "5.3.18" || len(m) != 2 {
		t.Errorf("got %v", m)
	}
}

func TestSplitFileName(t *testing.T) {
	for in, want := range map[string][2]string{
		"commons-lang3-3.12.0.jar":       {"commons-lang3", "3.12.0"},
		"guava-31.1-jre.jar":             {"guava", "31.1-jre"},
		"log4j-core-2.14.1.jar":          {"log4j-core", "2.14.1"},
		"spring-core-5.3.18.RELEASE.jar": {"spring-core", "5.3.18.RELEASE"},
		"bcprov-jdk15on-1.70.jar":        {"bcprov-jdk15on", "1.70"},
		"demo-0.0.1-SNAPSHOT.war":        {"demo", "0.0.1-SNAPSHOT"},
		"snakeyaml.jar":                  {"snakeyaml", ""},
	} {
		a, v := splitFileName(in)
		if a != want[0] || v != want[1] {
			t.Errorf("splitFileName(%q) = %q, %q; want %q", in, a, v, want)
		}
	}
}

func TestParseGradleLock(t *testing.T) {
	in := `# This is a Gradle generated file for dependency locking.
# Manual edits can break the build and are not advised.
# This file is expected to be part of source control.
com.fasterxml.jackson.core:jackson-databind:2.9.10=compileClasspath,runtimeClasspath,testCompileClasspath,testRuntimeClasspath
junit:junit:4.13.2=testCompileClasspath,testRuntimeClasspath
org.apache.logging.log4j:log4j-core:2.14.1=runtimeClasspath
empty=annotationProcessor,testAnnotationProcessor
`
	pkgs, err := ParseGradleLock([]byte(in))
	if err != nil {
		t.Fatal(err)
	}
	type row struct {
		name, version, purl string
		dev                 bool
	}
	var got []row
	for _, p := range pkgs {
		got = append(got, row{p.Name, p.Version, p.PURL, p.Dev})
	}
	want := []row{
		{"com.fasterxml.jackson.core:jackson-databind", "2.9.10", "pkg:maven/com.fasterxml.jackson.core/jackson-databind@2.9.10", false},
		{"junit:junit", "4.13.2", "pkg:maven/junit/junit@4.13.2", true},
		{"org.apache.logging.log4j:log4j-core", "2.14.1", "pkg:maven/org.apache.logging.log4j/log4j-core@2.14.1", false},
	}
	if !slices.Equal(got, want) {
		t.Errorf("got  %v\nwant %v", got, want)
	}
	if _, err := ParseGradleLock([]byte("not-a-coordinate=runtimeClasspath\n")); err == nil {
		t.Error("bad line accepted")
	}
}

func TestGradleRequired(t *testing.T) {
	g := NewGradleLock()
	for name, want := range map[string]bool{
		"src/app/gradle.lockfile":                                   true,
		"src/app/buildscript-gradle.lockfile":                       true,
		"src/app/gradle/dependency-locks/compileClasspath.lockfile": true,
		"src/app/other.lockfile":                                    false,
	} {
		if got := g.Required(name, fakeInfo{}); got != want {
			t.Errorf("Required(%q) = %v", name, got)
		}
	}
}

func TestFromRepoLayout(t *testing.T) {
	for in, want := range map[string]string{
		"/root/.m2/repository/org/springframework/spring-core/5.3.18/spring-core-5.3.18.jar": "org.springframework:spring-core:5.3.18",
		"/usr/share/maven-repo/com/google/guava/guava/31.1-jre/guava-31.1-jre.jar":           "com.google.guava:guava:31.1-jre",
		"/home/u/.m2/repository/junit/junit/4.13.2/junit-4.13.2-sources.jar":                 "junit:junit:4.13.2",
		"/root/.m2/repository/org/springframework/spring-core/5.3.18/other-5.3.18.jar":       "",
		"/opt/app/lib/org/springframework/spring-core/5.3.18/spring-core-5.3.18.jar":         "",
		"/usr/share/maven-repo/spring-core/5.3.18/spring-core-5.3.18.jar":                    "",
	} {
		p, ok := fromRepoLayout(in)
		got := ""
		if ok {
			got = p.GroupID + ":" + p.ArtifactID + ":" + p.Version
		}
		if got != want {
			t.Errorf("fromRepoLayout(%q) = %q, want %q", in, got, want)
		}
	}
}
