package cpe

import "testing"

func TestCompareVersions(t *testing.T) {
	tests := []struct {
		a, b string
		want int
	}{
		{"2.15", "2.15.0", 0},
		{"2.15.0", "2.15.0.final", 0},
		{"v1.2.3", "1.2.3", 0},
		{"2.0-beta9", "2.0-BETA9", 0},
		{"2.0-beta9", "2.0beta9", 0},
		{"2.0-beta9", "2.0.beta9", 0},
		{"2.0-beta8", "2.0-beta9", -1},
		{"2.0-beta9", "2.0-rc1", -1},
		{"2.0-rc2", "2.0", -1},
		{"2.0", "2.0.1", -1},
		{"2.0-alpha1", "2.0-beta1", -1},
		{"1.0-SNAPSHOT", "1.0-alpha1", -1},
		{"9.0.0-M1", "9.0.0", -1},
		{"9.0.0.M1", "9.0.0-RC1", -1},
		{"2.12.6", "2.12.6.1", -1},
		{"2.12.10", "2.12.6.1", 1},
		{"1.0.2", "1.0.2k", -1}, // OpenSSL letter releases come after the plain one
		{"1.0.2k", "1.0.2l", -1},
		{"1.0.2zz", "1.0.3", -1},
		{"2.0.1", "2.0-rc1", 1},
		{"10.2.9-h1", "10.2.9", 1},
		{"10.2.9-h1", "10.2.9-h2", -1},
		{"010", "10", 0},
		{"1.10", "1.9", 1},
		{"", "0", 0},
	}
	for _, tt := range tests {
		if got := CompareVersions(tt.a, tt.b); got != tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d", tt.a, tt.b, got, tt.want)
		}
		if got := CompareVersions(tt.b, tt.a); got != -tt.want {
			t.Errorf("CompareVersions(%q, %q) = %d, want %d (antisymmetry)", tt.b, tt.a, got, -tt.want)
		}
	}
}
