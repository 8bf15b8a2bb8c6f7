// Package guard reads, from a patch's hunks alone, which if-condition
// encloses each call of a function on the old and on the new side. It lets
// a test check what a patch does to a call (for example that the kmem patches
// put EnableKernelMemoryAccounting under `KernelMemory != 0`) in
// milliseconds, without the source tree or a build.
//
// A hunk is a fragment of Go code, not a file, so the check works on tokens
// (go/scanner): the block around a call is the innermost `{` before it that
// is still open, and its condition is the text of the if statement that
// opens it. A call whose block opens before the hunk, or is not an if block,
// has no condition ("").
package guard

import (
	"fmt"
	"go/scanner"
	"go/token"
	"strings"

	"github.com/bluekeyes/go-gitdiff/gitdiff"
)

// Call is one call of the function on one side of a hunk.
type Call struct {
	File string // the file's name on that side
	Hunk int    // 1-based hunk number within the file
	New  bool   // new side (after the patch) or old side
	// Cond is the header of the innermost if statement whose block holds
	// the call, with spaces normalized ("d.config.Resources.KernelMemory !=
	// 0", or "x := f(); x != 0" with an init statement); "" when that block
	// is not an if block or opens before the hunk.
	Cond string
}

func (c Call) String() string {
	side := "old"
	if c.New {
		side = "new"
	}
	return fmt.Sprintf("%s hunk %d (%s side): if %q", c.File, c.Hunk, side, c.Cond)
}

// Calls returns every call of fn (an identifier followed by "(") on both
// sides of every hunk of files, old side first within each hunk.
func Calls(files []*gitdiff.File, fn string) ([]Call, error) {
	var calls []Call
	for _, f := range files {
		for i, frag := range f.TextFragments {
			for _, newSide := range []bool{false, true} {
				name := f.OldName
				if newSide {
					name = f.NewName
				}
				conds, err := Conditions(side(frag, newSide), fn)
				if err != nil {
					return nil, fmt.Errorf("%s hunk %d: %w", name, i+1, err)
				}
				for _, c := range conds {
					calls = append(calls, Call{File: name, Hunk: i + 1, New: newSide, Cond: c})
				}
			}
		}
	}
	return calls, nil
}

// side is the text of one side of a hunk: context lines plus deleted lines
// (old) or added lines (new).
func side(frag *gitdiff.TextFragment, newSide bool) string {
	var b strings.Builder
	for _, l := range frag.Lines {
		if (newSide && l.New()) || (!newSide && l.Old()) {
			b.WriteString(l.Line)
		}
	}
	return b.String()
}

type tok struct {
	pos int // byte offset in src
	tok token.Token
	lit string
}

// Conditions returns, for every call of fn in the Go fragment src, the
// condition of the if block that holds it (see Call.Cond).
func Conditions(src, fn string) ([]string, error) {
	fset := token.NewFileSet()
	file := fset.AddFile("hunk", -1, len(src))
	var errs scanner.ErrorList
	var s scanner.Scanner
	s.Init(file, []byte(src), func(pos token.Position, msg string) { errs.Add(pos, msg) }, scanner.ScanComments)
	var toks []tok
	for {
		p, t, lit := s.Scan()
		if t == token.EOF {
			break
		}
		if t == token.COMMENT {
			continue
		}
		toks = append(toks, tok{file.Offset(p), t, lit})
	}
	if errs.Len() > 0 {
		return nil, fmt.Errorf("scan Go fragment: %w", errs.Err())
	}
	var conds []string
	for i, t := range toks {
		if t.tok == token.IDENT && t.lit == fn && i+1 < len(toks) && toks[i+1].tok == token.LPAREN {
			conds = append(conds, enclosingIf(src, toks, i))
		}
	}
	return conds, nil
}

// enclosingIf finds the innermost open "{" before toks[i] and, when an if
// statement opens it, returns that statement's header.
func enclosingIf(src string, toks []tok, i int) string {
	depth := 0
	open := -1
	for j := i - 1; j >= 0 && open < 0; j-- {
		switch toks[j].tok {
		case token.RBRACE:
			depth++
		case token.LBRACE:
			if depth == 0 {
				open = j
			}
			depth--
		}
	}
	if open < 0 {
		return ""
	}
	// Walk back over the header to the keyword that starts the statement.
	parens := 0
	for j := open - 1; j >= 0; j-- {
		switch t := toks[j]; t.tok {
		case token.RPAREN, token.RBRACK:
			parens++
		case token.LPAREN, token.LBRACK:
			parens--
		case token.IF:
			if parens == 0 {
				header := src[t.pos+len("if") : toks[open].pos]
				return strings.Join(strings.Fields(header), " ")
			}
		case token.LBRACE, token.RBRACE, token.FOR, token.SWITCH, token.SELECT, token.FUNC, token.ELSE:
			if parens == 0 {
				return ""
			}
		case token.SEMICOLON:
			if parens == 0 && t.lit == "\n" {
				return "" // the line before the block's header
			}
		}
	}
	return ""
}
