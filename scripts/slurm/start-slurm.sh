#!/bin/bash
# Single-node Slurm (no systemd) for tests: munged, slurmctld and slurmd with a private
# config and state in DIR, as root (docs/EXPERIMENTS.md). Usage: start-slurm.sh [DIR]
# (DIR default /tmp/slurm-ci). Stop with stop-slurm.sh DIR. From docs/platform-notes (measured).
set -euo pipefail
D=${1:-/tmp/slurm-ci}
T0=$(date +%s%N)
command -v slurmctld >/dev/null && command -v munged >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y -q slurm-wlm munge >/dev/null
mkdir -p "$D"/{state,spool,log,out}
# --- munge ---
[ -s /etc/munge/munge.key ] || { mungekey --create --keyfile=/etc/munge/munge.key 2>/dev/null || dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none; }
chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
mkdir -p /run/munge /var/lib/munge /var/log/munge
chown munge:munge /run/munge /var/lib/munge /var/log/munge; chmod 0755 /run/munge
if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
  runuser -u munge -- /usr/sbin/munged     # daemonizes; pid in /run/munge/munged.pid
  for i in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && break; sleep 0.1; done
fi
# --- slurm.conf ---
H=$(hostname -s)
CPUS=$(nproc)
MEM=$(( $(free -m | awk '/^Mem:/{print $2}') - 1024 ))
cat > "$D/slurm.conf" <<CONF
ClusterName=ci
SlurmctldHost=$H(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=${SLURM_SCHED_PARAMS:-sched_interval=1,bf_interval=1}
ReturnToService=2
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
MinJobAge=3600
DefMemPerCPU=1024
NodeName=$H NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$MEM State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
export SLURM_CONF="$D/slurm.conf"
/usr/sbin/slurmctld -f "$SLURM_CONF"      # daemonizes, writes pid file
/usr/sbin/slurmd -f "$SLURM_CONF"         # daemonizes, writes pid file
for i in $(seq 100); do
  st=$(sinfo -h -N -o '%T' 2>/dev/null || true)
  [ "$st" = "idle" ] && break; sleep 0.2
done
sinfo
echo "slurm up in $(( ($(date +%s%N) - T0) / 1000000 )) ms; export SLURM_CONF=$SLURM_CONF"
