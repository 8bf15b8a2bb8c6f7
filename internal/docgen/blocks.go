package docgen

import (
	"fmt"
	"regexp"
	"strconv"
	"strings"
)

// Block is a shell block of a doc marked to run in the doc-command test:
//
//	<!-- runs in test -->            (the block must exit 0)
//	<!-- runs in test: exit 1 -->    (the block must exit 1)
//	```sh
//	verify detect
//	```
type Block struct {
	Line   int // of the opening fence, 1-based
	Exit   int
	Script string
}

var runsRE = regexp.MustCompile(`^<!-- runs in test(?:: exit (\d+))? -->$`)

// Runnable returns the marked ```sh blocks of doc. A marker not followed by
// a ```sh block, or a block left open, is an error naming the line.
func Runnable(doc string) ([]Block, error) {
	lines := strings.Split(doc, "\n")
	var out []Block
	for i := 0; i < len(lines); i++ {
		m := runsRE.FindStringSubmatch(strings.TrimSpace(lines[i]))
		if m == nil {
			continue
		}
		b := Block{Line: i + 2}
		if m[1] != "" {
			b.Exit, _ = strconv.Atoi(m[1])
		}
		if i+1 >= len(lines) || strings.TrimSpace(lines[i+1]) != "```sh" {
			return nil, fmt.Errorf("line %d: a runs-in-test marker must be followed by a ```sh block", i+1)
		}
		var body []string
		j := i + 2
		for ; j < len(lines) && strings.TrimSpace(lines[j]) != "```"; j++ {
			body = append(body, lines[j])
		}
		if j == len(lines) {
			return nil, fmt.Errorf("line %d: the ```sh block is not closed", b.Line)
		}
		b.Script = strings.Join(body, "\n") + "\n"
		out = append(out, b)
		i = j
	}
	return out, nil
}
