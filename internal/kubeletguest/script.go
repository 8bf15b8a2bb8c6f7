package kubeletguest

import (
	"fmt"
	"strings"

	"github.com/nokmem/nokmem/internal/runcproof/qemuproof"
)

// Kinds are the two kubelets the guest runs, in this order, each with its
// own cgroup root (/<kind>) and directories (/var/lib/nokmem/<kind>).
var Kinds = []string{"stock", "nokmem"}

// Guest paths of the initramfs's payload.
const (
	guestOpt       = "/opt/nokmem"
	guestManifests = guestOpt + "/manifests"
	guestImages    = guestOpt + "/images"
)

// Script is the initramfs's /init. Stage one moves the payload to a tmpfs
// and switch_roots into it (runc's pivot_root cannot leave an initramfs, as
// in qemuproof); stage two mounts the cgroup v1 controllers, probes whether
// this kernel activates v1 kmem accounting at all (the runc sequence `1`,
// `-1` on an empty cgroup, docs/memcg-v1-semantics.md §3d), starts
// containerd, imports the two images, then for each kubelet of Kinds: starts
// it standalone on its own cgroup root, runs the static pods, reads
// memory.kmem.slabinfo of every memory cgroup under its kubepods, churns the
// pods rounds times (all removed, all added) and counts the kmemcg ids of
// the per-memcg slab caches in /sys/kernel/slab with every pod removed,
// before and after the churn (§1g method 2), and stops the kubelet. When
// the initramfs holds a bundle, it then runs `verify run --bundle` under
// the stock kubelet on the hierarchy's root kubepods (node binaries in
// /opt/node/bin) and compares containers, slabinfo and `verify assert`.
// One result line per check (qemuproof.ResultPrefix), the facts as key=value
// details that Evaluate judges on the host.
func Script(pods, rounds int) string {
	return strings.NewReplacer(
		"@R@", strings.TrimSpace(qemuproof.ResultPrefix), "@DONE@", qemuproof.DoneLine,
		"@PODS@", fmt.Sprint(pods), "@TASKS@", fmt.Sprint(pods*3), "@ROUNDS@", fmt.Sprint(rounds),
		"@KINDS@", strings.Join(Kinds, " "), "@OPT@", guestOpt, "@MAN@", guestManifests, "@IMG@", guestImages,
		"@FLAGS@", strings.Join(kubeletFlags, " "),
	).Replace(initScript)
}

// kubeletFlags are the guest kubelet's flags, the host part's
// (internal/kubeletnode NewKubelet) on the guest's own paths; $k is the
// kind (or migrate), $cg its cgroup root under each controller's root. The guest is the kubelet's alone, so the default ports serve.
var kubeletFlags = []string{
	"--container-runtime=remote",
	"--container-runtime-endpoint=unix:///run/containerd/containerd.sock",
	"--image-service-endpoint=unix:///run/containerd/containerd.sock",
	"--runtime-request-timeout=10m",
	"--cgroup-driver=cgroupfs",
	"--cgroup-root=/$cg",
	"--cgroups-per-qos=true",
	"--pod-manifest-path=/var/lib/nokmem/$k/manifests",
	"--file-check-frequency=1s",
	"--root-dir=/var/lib/nokmem/$k/root",
	"--cert-dir=/var/lib/nokmem/$k/pki",
	"--volume-plugin-dir=/var/lib/nokmem/$k/volume-plugins",
	"--seccomp-profile-root=/var/lib/nokmem/$k/seccomp",
	"--address=127.0.0.1",
	"--healthz-bind-address=127.0.0.1",
	"--hostname-override=guest",
	"--pod-infra-container-image=" + pauseRef,
	"--fail-swap-on=false",
	"--cloud-provider=",
	"--make-iptables-util-chains=false",
	"--eviction-hard=",
	"--image-gc-high-threshold=100",
	"--image-gc-low-threshold=99",
	"--v=2",
}

const initScript = `#!/bin/busybox sh
# nokmem kubelet guest (internal/kubeletguest): the stock and the nokmem kubelet with static pods on this kernel.
/bin/busybox --install -s /bin
export PATH=/usr/bin:/bin
if [ "$1" != stage2 ]; then
	mount -t devtmpfs dev /dev
	exec </dev/console >/dev/console 2>&1
	mount -t proc proc /proc
	mkdir -p /newroot
	mount -t tmpfs -o size=2g root /newroot
	cp -a /bin /usr /lib /lib64 /etc /opt /init /newroot/
	mkdir -p /newroot/proc /newroot/sys /newroot/dev /newroot/run /newroot/tmp /newroot/var
	umount /proc
	exec switch_root /newroot /init stage2
fi
r() { echo "@R@ $*"; }
now() { cut -d' ' -f1 /proc/uptime; }
since() { awk -v a="$1" -v b="$(now)" 'BEGIN { printf "%.1f", b - a }'; }
slab_state() { # slab_state DIR: eio, empty (read 0 bytes) or active (read >0 bytes)
	out=$(cat "$1/memory.kmem.slabinfo" 2>&1); rc=$?
	if [ $rc != 0 ]; then
		case "$out" in *Input/output*) echo eio ;; *) echo "error:$(echo $out | tr ' ' _ | cut -c1-60)" ;; esac
	elif [ -z "$out" ]; then echo empty; else echo active; fi
}
kmemcg_ids() { # distinct kmemcg ids of the per-memcg slab cache aliases (docs/memcg-v1-semantics.md §1g)
	ls /sys/kernel/slab 2>/dev/null | grep '(' | sed 's/.*(\([0-9]*\):.*/\1/' | sort -u | wc -l
}
slab_count() { # slab_count DIR: sets n, active, empty, eio, other over DIR and its descendants
	n=0; active=0; empty=0; eio=0; other=0
	for g in $(find $1 -type d); do
		n=$((n+1))
		case $(slab_state $g) in active) active=$((active+1)) ;; empty) empty=$((empty+1)) ;; eio) eio=$((eio+1)) ;; *) other=$((other+1)) ;; esac
	done
}
memcgs() { awk '$1 == "memory" { print $3 }' /proc/cgroups; }
tasks_running() { ctr -n k8s.io tasks ls 2>/dev/null | grep -c RUNNING; }
pod_cgroups() { find /sys/fs/cgroup/memory/$cg/kubepods -type d -name 'pod*' 2>/dev/null | wc -l; }
wait_for() { # wait_for SECONDS COMMAND...: poll every second until the command succeeds
	n=$1; shift
	while [ $n -gt 0 ]; do "$@" && return 0; sleep 1; n=$((n-1)); done
	return 1
}
pods_up() { [ "$(tasks_running)" -ge @TASKS@ ] && [ "$(pod_cgroups)" -ge @PODS@ ]; }
pods_gone() { [ "$(tasks_running)" = 0 ] && [ "$(pod_cgroups)" = 0 ]; }
healthy() { [ "$(wget -q -O- http://127.0.0.1:10248/healthz 2>/dev/null)" = ok ]; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t devtmpfs dev /dev
mkdir -p /dev/pts /dev/shm && mount -t devpts devpts /dev/pts && mount -t tmpfs shm /dev/shm
mount -t tmpfs run /run
mount -t tmpfs tmp /tmp
mount -t tmpfs var /var
mkdir -p /var/lib /var/log /var/run
r boot info "uptime=$(now)"
mount -t tmpfs cgroup /sys/fs/cgroup
for c in $(awk 'NR > 1 && $4 == 1 { print $1 }' /proc/cgroups); do
	mkdir -p /sys/fs/cgroup/$c
	mount -t cgroup -o $c cgroup /sys/fs/cgroup/$c || r mount-$c fail
done
mkdir -p /sys/fs/cgroup/systemd && mount -t cgroup -o none,name=systemd cgroup /sys/fs/cgroup/systemd
echo 1 > /sys/fs/cgroup/memory/memory.use_hierarchy
hostname guest
ip link set lo up
r kernel info "$(uname -r)"
r memory info "$(awk '$1 == "MemTotal:" { print "total_kb=" $2 }' /proc/meminfo)"

# Does this kernel activate v1 kmem accounting? The runc sequence on an empty cgroup (§3d).
p=/sys/fs/cgroup/memory/kmem-probe
mkdir $p
before=$(slab_state $p)
echo 1 > $p/memory.kmem.limit_in_bytes 2>/dev/null
echo -1 > $p/memory.kmem.limit_in_bytes 2>/dev/null
r kernel-kmem info "before=$before after=$(slab_state $p)"
rmdir $p

mkdir -p /opt/node/bin && cp /usr/bin/runc /opt/node/bin/runc
t=$(now)
containerd --config /etc/containerd/config.toml >/tmp/containerd.log 2>&1 &
if wait_for 300 ctr version >/dev/null 2>&1; then r containerd-start ok "seconds=$(since $t) version=$(containerd --version | awk '{ print $3 }')"; else r containerd-start fail "$(tail -c 300 /tmp/containerd.log | tr '\n' ' ')"; fi
r runc info "$(runc --version | head -1)"
t=$(now)
ok=1
for i in @IMG@/*.tar; do ctr -n k8s.io images import --snapshotter native $i >/tmp/import.log 2>&1 || { ok=0; r images fail "$i: $(tail -c 200 /tmp/import.log | tr '\n' ' ')"; }; done
[ $ok = 1 ] && r images ok "seconds=$(since $t) $(ctr -n k8s.io images ls -q | grep -c nokmem.test) images"

for k in @KINDS@; do
	cg=$k
	for c in $(ls /sys/fs/cgroup); do mkdir -p /sys/fs/cgroup/$c/$k; done
	cat /sys/fs/cgroup/cpuset/cpuset.cpus > /sys/fs/cgroup/cpuset/$k/cpuset.cpus
	cat /sys/fs/cgroup/cpuset/cpuset.mems > /sys/fs/cgroup/cpuset/$k/cpuset.mems
	d=/var/lib/nokmem/$k
	mkdir -p $d/manifests $d/root $d/pki $d/volume-plugins $d/seccomp
	r $k-kubelet info "$(@OPT@/kubelet-$k --version)"
	t=$(now)
	@OPT@/kubelet-$k @FLAGS@ >$d/kubelet.log 2>&1 &
	kpid=$!
	if wait_for 600 healthy; then r $k-kubelet-start ok "seconds=$(since $t)"; else r $k-kubelet-start fail "$(tail -c 400 $d/kubelet.log | tr '\n' ' ')"; fi
	t=$(now)
	cp @MAN@/*.yaml $d/manifests/
	if wait_for 900 pods_up; then r $k-pods ok "pods=$(pod_cgroups) tasks=$(tasks_running) seconds=$(since $t)"; else r $k-pods fail "pods=$(pod_cgroups) tasks=$(tasks_running) $(grep -i error $d/kubelet.log | tail -n 3 | cut -c1-200 | tr '\n' ' ')"; fi
	slab_count /sys/fs/cgroup/memory/$cg/kubepods
	r $k-slabinfo info "cgroups=$n active=$active empty=$empty eio=$eio other=$other"
	r $k-kmem-limit info "kubepods=$(cat /sys/fs/cgroup/memory/$cg/kubepods/memory.kmem.limit_in_bytes)"
	rm -f $d/manifests/*.yaml
	wait_for 600 pods_gone || r $k-pods-removed fail "pods=$(pod_cgroups) tasks=$(tasks_running)"
	ids0=$(kmemcg_ids); cg0=$(memcgs)
	t=$(now); i=0; churn=ok
	while [ $i -lt @ROUNDS@ ]; do
		i=$((i+1))
		cp @MAN@/*.yaml $d/manifests/
		wait_for 900 pods_up || { churn="fail round=$i up pods=$(pod_cgroups) tasks=$(tasks_running)"; break; }
		rm -f $d/manifests/*.yaml
		wait_for 600 pods_gone || { churn="fail round=$i down pods=$(pod_cgroups) tasks=$(tasks_running)"; break; }
	done
	r $k-churn $churn "rounds=@ROUNDS@ pods=@PODS@ seconds=$(since $t)"
	r $k-leak info "ids_before=$ids0 ids_after=$(kmemcg_ids) num_cgroups_before=$cg0 num_cgroups_after=$(memcgs)"
	t=$(now)
	kill $kpid
	(sleep 120; kill -9 $kpid 2>/dev/null) &
	w=$!
	wait $kpid
	if kill $w 2>/dev/null; then r $k-kubelet-stop ok "seconds=$(since $t)"; else r $k-kubelet-stop fail "SIGKILL after 120 s"; fi
done

if [ -f @OPT@/bundle.tar.gz ]; then
	# verify run --bundle under the stock kubelet: stop, install, migrate, start (docs/staging-acceptance.md).
	r verify info enabled
	# verify migrates the kubepods of a hierarchy's root: this kubelet's cgroup root is /.
	k=migrate cg=
	d=/var/lib/nokmem/$k
	mkdir -p $d/manifests $d/root $d/pki $d/volume-plugins $d/seccomp $d/tmp
	cp @OPT@/kubelet-stock /opt/node/bin/kubelet
	cat > $d/start.sh <<END
#!/bin/sh
setsid /opt/node/bin/kubelet @FLAGS@ >>$d/kubelet.log 2>&1 </dev/null &
echo \$! > $d/kubelet.pid
END
	cat > $d/stop.sh <<END
#!/bin/sh
p=\$(cat $d/kubelet.pid)
kill \$p 2>/dev/null || exit 0
i=0
while readlink /proc/\$p/exe >/dev/null 2>&1; do i=\$((i+1)); [ \$i = 1200 ] && kill -9 \$p; sleep 0.05; done
exit 0
END
	chmod +x $d/start.sh $d/stop.sh
	$d/start.sh
	wait_for 600 healthy || r migrate-kubelet-start fail "$(tail -c 400 $d/kubelet.log | tr '\n' ' ')"
	cp @MAN@/*.yaml $d/manifests/
	if wait_for 900 pods_up; then r migrate-pods ok "pods=$(pod_cgroups) tasks=$(tasks_running)"; else r migrate-pods fail "pods=$(pod_cgroups) tasks=$(tasks_running)"; fi
	slab_count /sys/fs/cgroup/memory/$cg/kubepods
	r migrate-slabinfo-before info "cgroups=$n active=$active empty=$empty eio=$eio other=$other"
	ctr -n k8s.io tasks ls | awk 'NR > 1 { print $1, $2, $3 }' | sort > $d/tasks.before
	V="@OPT@/verify --root /sys/fs/cgroup/memory --state-dir /var/lib/nokmem/verify-state"
	t=$(now)
	$V run --search-dirs /opt/node/bin --kubelet-path /opt/node/bin/kubelet --runc-path /opt/node/bin/runc \
		--bundle @OPT@/bundle.tar.gz --pubkey @OPT@/release.pub --tmp-dir $d/tmp \
		--stop-cmd $d/stop.sh --start-cmd $d/start.sh --healthz http://127.0.0.1:10248/healthz --kubelet-timeout 10m \
		--report $d/report.json -o json >$d/run.json 2>$d/run.err
	rc=$?
	facts="exit=$rc seconds=$(since $t) $(grep -o '"outcome": *"[^"]*"' $d/run.json | head -1 | tr -d ' "') $(grep -o '"kubelet_downtime_seconds": *[0-9.e+-]*' $d/run.json | head -1 | tr -d ' "')"
	if [ $rc = 0 ]; then r verify-run ok "$facts"; else r verify-run fail "$facts $(tail -c 600 $d/run.err | tr '\n' ' ')"; fi
	wait_for 600 healthy || r migrate-kubelet-back fail "$(tail -c 300 $d/kubelet.log | tr '\n' ' ')"
	r migrate-kubelet info "$(/opt/node/bin/kubelet --version)"
	ctr -n k8s.io tasks ls | awk 'NR > 1 { print $1, $2, $3 }' | sort > $d/tasks.after
	if cmp -s $d/tasks.before $d/tasks.after; then r verify-containers ok "same=$(wc -l < $d/tasks.after) (id, pid, status)"; else r verify-containers fail "$(diff $d/tasks.before $d/tasks.after | grep '^[-+][^-+]' | head -4 | tr '\n' ' ')"; fi
	slab_count /sys/fs/cgroup/memory/$cg/kubepods
	r migrate-slabinfo-after info "cgroups=$n active=$active empty=$empty eio=$eio other=$other"
	out=$($V assert 2>&1); rc=$?
	if [ $rc = 0 ]; then r verify-assert ok; else r verify-assert fail "exit=$rc $(echo $out | cut -c1-300)"; fi
	rm -f $d/manifests/*.yaml
	wait_for 600 pods_gone || r migrate-pods-removed fail "pods=$(pod_cgroups) tasks=$(tasks_running)"
	$d/stop.sh
else
	r verify info disabled
fi
r uptime info "seconds=$(now)"
echo @DONE@
poweroff -f
`
