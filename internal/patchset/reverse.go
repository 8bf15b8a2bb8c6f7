package patchset

import "github.com/bluekeyes/go-gitdiff/gitdiff"

// reverseFile returns the diff that undoes f: old and new sides swapped,
// added lines deleted and deleted lines added.
func reverseFile(f *gitdiff.File) *gitdiff.File {
	r := *f
	r.OldName, r.NewName = f.NewName, f.OldName
	r.IsNew, r.IsDelete = f.IsDelete, f.IsNew
	r.OldMode, r.NewMode = f.NewMode, f.OldMode
	r.OldOIDPrefix, r.NewOIDPrefix = f.NewOIDPrefix, f.OldOIDPrefix
	r.TextFragments = make([]*gitdiff.TextFragment, len(f.TextFragments))
	for i, tf := range f.TextFragments {
		rf := *tf
		rf.OldPosition, rf.NewPosition = tf.NewPosition, tf.OldPosition
		rf.OldLines, rf.NewLines = tf.NewLines, tf.OldLines
		rf.LinesAdded, rf.LinesDeleted = tf.LinesDeleted, tf.LinesAdded
		rf.Lines = make([]gitdiff.Line, len(tf.Lines))
		for j, l := range tf.Lines {
			switch l.Op {
			case gitdiff.OpAdd:
				l.Op = gitdiff.OpDelete
			case gitdiff.OpDelete:
				l.Op = gitdiff.OpAdd
			}
			rf.Lines[j] = l
		}
		r.TextFragments[i] = &rf
	}
	return &r
}
