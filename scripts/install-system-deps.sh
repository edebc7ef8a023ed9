#!/usr/bin/env bash
# Debian packages the tests use: bubblewrap (kernel isolation), chromium (rendering the HTML
# reports headless), and Slurm with munge (tests/test_slurm.py starts a single-node cluster of its
# own). Installed only when missing and when we may (root, apt-get present); otherwise the tests
# that need them are skipped and say why.
set -u
need=()
command -v bwrap >/dev/null 2>&1 || need+=(bubblewrap)
command -v chromium >/dev/null 2>&1 || need+=(chromium fonts-liberation fonts-dejavu-core)
for program in slurmctld:slurmctld slurmd:slurmd sbatch:slurm-client munged:munge; do
  command -v "${program%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${program%%:*}" ] || need+=("${program##*:}")
done
[ ${#need[@]} -eq 0 ] && exit 0
if [ "$(id -u)" != 0 ] || ! command -v apt-get >/dev/null 2>&1; then
  echo "note: ${need[*]} not installed (needs root and apt-get); the tests that use them will be skipped" >&2
  exit 0
fi
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq && apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
