#!/usr/bin/env bash
# ferry's two-appliance demo on one machine: two loop-backed btrfs pools, two
# state directories, a receiver on 127.0.0.1, a full and an incremental send with
# a progress bar, one scheduled tick by `ferry sender`, status and both histories,
# a proof that the replica equals the source, and a failover to nas2 with an
# incremental failback to nas1. Everything it makes is removed
# on exit, also on Ctrl-C. Run as root (via `make demo`).
set -euo pipefail

FERRY=${FERRY:-$(cd "$(dirname "$0")/.." && pwd)/target/release/ferry}
[ "$(id -u)" -eq 0 ] || { echo "demo: run as root (mounting btrfs pools needs it)" >&2; exit 2; }
[ -x "$FERRY" ] || { echo "demo: $FERRY is missing; run 'make demo'" >&2; exit 2; }

WORK=$(mktemp -d /tmp/ferry-demo.XXXXXX)
PIDS=()
cleanup() {
    local status=${1:-$?}
    trap - EXIT INT TERM
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    for pool in "$WORK"/nas1-pool "$WORK"/nas2-pool; do
        if mountpoint -q "$pool" 2>/dev/null; then umount "$pool" || umount -l "$pool" || true; fi
    done
    # mount -o loop sets autoclear; this catches a device whose mount failed half-way.
    for img in "$WORK"/*.img; do
        [ -e "$img" ] || continue
        for dev in $(losetup -j "$img" -O NAME --noheadings 2>/dev/null); do losetup -d "$dev" || true; done
    done
    rm -rf "$WORK"
    exit "$status"
}
trap cleanup EXIT
trap 'cleanup 130' INT
trap 'cleanup 143' TERM

# Bold headings on a terminal only, and never under NO_COLOR (no-color.org).
if [ -t 1 ] && [ -z "${NO_COLOR:-}" ]; then
    step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
else
    step() { printf '\n== %s\n' "$*"; }
fi
nas1() { "$FERRY" --state-dir "$WORK/nas1" --config /dev/null "$@"; }
nas2() { "$FERRY" --state-dir "$WORK/nas2" --config /dev/null "$@"; }
fingerprint() { "$@" id --json | sed -n 's/.*"fingerprint": *"\([^"]*\)".*/\1/p'; }

step "two loop-backed btrfs pools in $WORK"
for n in nas1 nas2; do
    truncate -s 1G "$WORK/$n.img"
    mkfs.btrfs -q "$WORK/$n.img" 2>/dev/null
    mkdir "$WORK/$n-pool"
    mount -o loop "$WORK/$n.img" "$WORK/$n-pool"
done
btrfs -q subvolume create "$WORK/nas1-pool/photos"
btrfs -q subvolume create "$WORK/nas1-pool/docs"
cp -r /usr/share/doc/. "$WORK/nas1-pool/docs/" 2>/dev/null || true
head -c 96M /dev/urandom > "$WORK/nas1-pool/photos/holiday.raw"
cp -r /usr/share/common-licenses "$WORK/nas1-pool/photos/licenses" 2>/dev/null || true
echo "photos: $(du -sh "$WORK/nas1-pool/photos" | cut -f1), docs: $(du -sh "$WORK/nas1-pool/docs" | cut -f1)"

step "identities: ferry init on both appliances"
nas1 init --name nas1 >/dev/null
nas2 init --name nas2 >/dev/null
nas1 id
nas2 id

step "nas2 (target): expose a pool, trust nas1, start the receiver"
nas2 pool add backup "$WORK/nas2-pool"
nas2 appliance add nas1 --address 127.0.0.1 --fingerprint "$(fingerprint nas1)"
# Daemons run as direct children (not through a function) so their PIDs are ferry's.
"$FERRY" --state-dir "$WORK/nas2" --config /dev/null receiver --listen 127.0.0.1 --meta-port 0 --data-port 0 \
    > "$WORK/receiver.out" 2> "$WORK/receiver.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$WORK/receiver.out" 2>/dev/null && break; sleep 0.1; done
grep listening "$WORK/receiver.out" || { echo "demo: the receiver did not start:" >&2; cat "$WORK/receiver.log" >&2; exit 1; }
META=$(sed -n 's/.*meta [^ ]*:\([0-9]*\).*/\1/p' "$WORK/receiver.out")
DATA=$(sed -n 's/.*data [^ ]*:\([0-9]*\).*/\1/p' "$WORK/receiver.out")

step "nas1 (source): trust nas2, add two tasks"
nas1 appliance add nas2 --address 127.0.0.1 --fingerprint "$(fingerprint nas2)" --meta-port "$META" --data-port "$DATA"
nas1 task add photos --share "$WORK/nas1-pool/photos" --target nas2 --pool backup --frequency 5m
nas1 task add docs --share "$WORK/nas1-pool/docs" --target nas2 --pool backup --frequency 10m
nas1 task list

step "first run of photos: a full send"
nas1 task run photos --progress

step "change the share, run again: an incremental send"
head -c 8M /dev/urandom > "$WORK/nas1-pool/photos/new-shot.raw"
echo "edited" >> "$WORK/nas1-pool/photos/licenses/GPL-3" 2>/dev/null || true
rm -f "$WORK/nas1-pool/photos/licenses/Artistic"
nas1 task run photos --progress

step "ferry sender: the scheduler runs docs (never run yet, so due now)"
"$FERRY" --state-dir "$WORK/nas1" --config /dev/null sender > "$WORK/sender.out" 2> "$WORK/sender.log" &
SENDER=$!
PIDS+=("$SENDER")
for _ in $(seq 300); do
    nas1 history send --task docs --json > "$WORK/docs.json"
    grep -q '"status": "succeeded"' "$WORK/docs.json" && break
    sleep 0.2
done
kill -TERM "$SENDER"
wait "$SENDER" || true
grep -E 'send (succeeded|failed)' "$WORK/sender.log" | sed 's/^/  sender log: /' || true

step "ferry status"
nas1 status
nas2 status

step "history on nas1 (sent)"
nas1 history send
step "history on nas2 (received)"
nas2 history receive

step "the replicas equal the sources"
NAS1_UUID=$(nas1 id --json | sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p')
for share in photos docs; do
    replica="$WORK/nas2-pool/.ferry/$NAS1_UUID/$share/latest"
    diff -r --no-dereference "$WORK/nas1-pool/$share" "$replica/"
    echo "$share: $(readlink "$replica") is identical to the source"
done

step "failover: nas1 is gone; nas2 lists its replicas and restores photos as a live share"
nas2 replica list --source nas1
nas2 replica restore nas1 photos --to "$WORK/nas2-pool/photos"
head -c 2M /dev/urandom > "$WORK/nas2-pool/photos/written-on-nas2.raw"
echo "clients now use $WORK/nas2-pool/photos on nas2 and write 2 MiB there"

step "failback: nas1 is back; nas2 sends the live share to it incrementally"
"$FERRY" --state-dir "$WORK/nas1" --config /dev/null receiver --listen 127.0.0.1 --meta-port 0 --data-port 0 \
    > "$WORK/receiver1.out" 2> "$WORK/receiver1.log" &
PIDS+=($!)
for _ in $(seq 100); do grep -q listening "$WORK/receiver1.out" 2>/dev/null && break; sleep 0.1; done
grep listening "$WORK/receiver1.out" || { echo "demo: nas1's receiver did not start:" >&2; cat "$WORK/receiver1.log" >&2; exit 1; }
META1=$(sed -n 's/.*meta [^ ]*:\([0-9]*\).*/\1/p' "$WORK/receiver1.out")
DATA1=$(sed -n 's/.*data [^ ]*:\([0-9]*\).*/\1/p' "$WORK/receiver1.out")
nas1 pool add home "$WORK/nas1-pool"
nas2 appliance set nas1 --meta-port "$META1" --data-port "$DATA1"
nas2 task add photos --share "$WORK/nas2-pool/photos" --target nas1 --pool home --frequency 5m
nas2 task run photos
STREAM=$(nas2 history send --task photos --limit 1 --json | sed -n 's/.*"stream_bytes": *\([0-9]*\).*/\1/p')
SHARE=$(du -sb "$WORK/nas2-pool/photos" | cut -f1)
echo "failback stream: $STREAM bytes for a share of $SHARE bytes ($(( STREAM * 100 / SHARE ))%)"

step "resume the normal direction: nas1's share comes back from the failback replica"
NAS2_UUID=$(nas2 id --json | sed -n 's/.*"uuid": *"\([^"]*\)".*/\1/p')
mv "$WORK/nas1-pool/photos" "$WORK/nas1-pool/photos.before-failover"
nas1 replica restore nas2 photos --to "$WORK/nas1-pool/photos"
diff -r "$WORK/nas2-pool/photos" "$WORK/nas1-pool/photos" && echo "nas1's photos equals nas2's live share"
nas1 task run photos
nas1 history send --task photos --limit 1

step "done: removing the pools and state"
