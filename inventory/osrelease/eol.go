package osrelease

import "time"

// eolTable holds the end of the vendor's support per family and release, as published in the vendors'
// lifecycle pages (dates to the day where the vendor gives one, else the last day of the month given):
//   - Debian: https://wiki.debian.org/LTS — the end of Debian LTS, because the Debian security tracker
//     (the feed Vigil matches Debian against) keeps covering a release until then.
//   - Ubuntu: https://ubuntu.com/about/release-cycle — the end of standard support (ESM is a paid extra).
//   - Alpine: https://alpinelinux.org/releases/ — the end of the branch's security support.
//   - RHEL: https://access.redhat.com/support/policy/updates/errata — end of Maintenance Support.
//   - AlmaLinux https://wiki.almalinux.org/release-notes/, Rocky Linux https://wiki.rockylinux.org/rocky/version/,
//     CentOS https://www.centos.org/centos-linux-eol/ and https://www.centos.org/centos-stream/.
//   - Amazon Linux: https://aws.amazon.com/amazon-linux-2/faqs/ (AL2 extended to 2026-06-30) and
//     https://docs.aws.amazon.com/linux/al2023/ug/release-cadence.html.
//   - Oracle Linux: https://www.oracle.com/a/ocom/docs/elsp-lifetime-069338.pdf (Premier Support).
//   - openSUSE Leap: https://en.opensuse.org/Lifetime.
//
// Keys are family → release key (see releaseKey).
var eolTable = map[string]map[string]string{
	"debian": {
		"8": "2020-06-30", "9": "2022-06-30", "10": "2024-06-30", "11": "2026-08-31",
		"12": "2028-06-30", "13": "2030-06-30",
	},
	"ubuntu": {
		"14.04": "2019-04-30", "16.04": "2021-04-30", "18.04": "2023-05-31", "20.04": "2025-05-31",
		"22.04": "2027-06-30", "24.04": "2029-05-31",
		"20.10": "2021-07-22", "21.04": "2022-01-20", "21.10": "2022-07-14", "22.10": "2023-07-20",
		"23.04": "2024-01-25", "23.10": "2024-07-11", "24.10": "2025-07-10", "25.04": "2026-01-15",
		"25.10": "2026-07-09",
	},
	"alpine": {
		"3.10": "2021-05-01", "3.11": "2021-11-01", "3.12": "2022-05-01", "3.13": "2022-11-01",
		"3.14": "2023-05-01", "3.15": "2023-11-01", "3.16": "2024-05-23", "3.17": "2024-11-22",
		"3.18": "2025-05-09", "3.19": "2025-11-01", "3.20": "2026-04-01", "3.21": "2026-11-01",
		"3.22": "2027-05-01",
	},
	"rhel":      {"6": "2020-11-30", "7": "2024-06-30", "8": "2029-05-31", "9": "2032-05-31", "10": "2035-05-31"},
	"almalinux": {"8": "2029-03-01", "9": "2032-05-31", "10": "2035-05-31"},
	"rocky":     {"8": "2029-05-31", "9": "2032-05-31", "10": "2035-05-31"},
	"centos":    {"6": "2020-11-30", "7": "2024-06-30", "8": "2021-12-31"},
	// CentOS Stream shares the centos ID; its os-release NAME tells it apart (see releaseKey).
	"centos-stream": {"8": "2024-05-31", "9": "2027-05-31"},
	"amzn":          {"2018.03": "2023-12-31", "2": "2026-06-30", "2023": "2029-06-30"},
	"ol":            {"6": "2021-03-31", "7": "2024-12-31", "8": "2029-07-31", "9": "2032-06-30"},
	"opensuse-leap": {"15.4": "2023-12-07", "15.5": "2024-12-31", "15.6": "2026-04-30"},
}

// lookupEOL returns the end of support for a family and release key, or nil when unknown.
func lookupEOL(family, key string) *time.Time {
	s, ok := eolTable[family][key]
	if !ok {
		return nil
	}
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return nil
	}
	t = t.UTC()
	return &t
}
