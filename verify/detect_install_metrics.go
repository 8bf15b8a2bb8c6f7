package main

import (
	"github.com/nokmem/nokmem/verify/detect"
	"github.com/nokmem/nokmem/verify/report"
)

// installRecordMetrics are detect's metrics of the install record: an
// interrupted install (state "installing") and a record that cannot be read.
func installRecordMetrics(r *detect.Report) []report.Metric {
	in := r.Leftovers.Install
	unfinished, untrusted := false, false
	if in != nil {
		unfinished, untrusted = in.State == "installing", in.Error != ""
	}
	return []report.Metric{
		{Name: "nokmem_install_unfinished", Help: "1 when the install record says \"installing\": an install was interrupted and the binaries may be half replaced.", Value: report.Bool(unfinished)},
		{Name: "nokmem_install_record_untrusted", Help: "1 when the install record cannot be read; install and rollback refuse it (verify install --abandon).", Value: report.Bool(untrusted)},
	}
}
