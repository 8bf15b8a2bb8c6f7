package docgen

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
)

var (
	linkRE    = regexp.MustCompile(`\]\(([^)\s]+)\)`)
	headingRE = regexp.MustCompile(`(?m)^#{1,6} (.+)$`)
	fenceRE   = regexp.MustCompile("(?ms)^```.*?^```")
)

// Anchor is the GitHub anchor of a heading: lower case, punctuation
// dropped except - and _, spaces to -.
func Anchor(heading string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(strings.TrimSpace(heading)) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r > 127:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors lists the anchors of the headings of a Markdown document.
func anchors(doc string) map[string]bool {
	a := map[string]bool{}
	for _, m := range headingRE.FindAllStringSubmatch(fenceRE.ReplaceAllString(doc, ""), -1) {
		a[Anchor(m[1])] = true
	}
	return a
}

// CheckLinks fails for every relative link of the doc at path that names a
// file that does not exist or a heading the target does not have.
func CheckLinks(path string) []error {
	data, err := os.ReadFile(path)
	if err != nil {
		return []error{err}
	}
	doc := fenceRE.ReplaceAllString(string(data), "")
	var errs []error
	for _, m := range linkRE.FindAllStringSubmatch(doc, -1) {
		link := m[1]
		if strings.Contains(link, "://") || strings.HasPrefix(link, "mailto:") {
			continue
		}
		file, frag, _ := strings.Cut(link, "#")
		target := path
		if file != "" {
			target = filepath.Join(filepath.Dir(path), file)
		}
		st, err := os.Stat(target)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: link %s: %w", path, link, err))
			continue
		}
		if frag == "" || st.IsDir() || !strings.HasSuffix(target, ".md") {
			continue
		}
		t, err := os.ReadFile(target)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		if !anchors(string(t))[frag] {
			errs = append(errs, fmt.Errorf("%s: link %s: %s has no heading with anchor #%s", path, link, target, frag))
		}
	}
	return errs
}
