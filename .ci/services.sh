#!/usr/bin/env bash
# The production stack of the test suite, from Debian's packages, started as root (no systemd needed):
#   PostgreSQL (a CI role that may create databases and roles: `verdi presto --use-postgres` uses it),
#   RabbitMQ (localhost:5672, the default guest account), munge + slurmctld + slurmd (one node, partition `debug`,
#   the machine's cores and memory). Idempotent: what runs already is left alone. Called by `make services`.
set -euo pipefail

PG_ROLE=${MLFFDIFF_PG_ROLE:-mlffdiff_ci}
PG_PASSWORD=${MLFFDIFF_PG_PASSWORD:-mlffdiff_ci}

if [ "$(id -u)" != 0 ]; then
    echo "error: the services are installed and started as root (run 'sudo make services')"; exit 1
fi

missing=()
for pair in psql:postgresql rabbitmq-server:rabbitmq-server slurmctld:slurm-wlm munged:munge; do
    command -v "${pair%%:*}" >/dev/null 2>&1 || [ -x "/usr/sbin/${pair%%:*}" ] || missing+=("${pair##*:}")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "installing Debian packages: ${missing[*]}"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${missing[@]}" >/dev/null
fi

# PostgreSQL
if ! pg_lsclusters -h | awk '{print $4}' | grep -q online; then
    pg_ctlcluster "$(pg_lsclusters -h | awk 'NR==1{print $1}')" main start
fi
su postgres -c "psql -tAc \"SELECT 1 FROM pg_roles WHERE rolname='${PG_ROLE}'\"" | grep -q 1 \
    || su postgres -c "psql -qc \"CREATE ROLE ${PG_ROLE} LOGIN CREATEDB CREATEROLE PASSWORD '${PG_PASSWORD}'\""
echo "PostgreSQL: up (role ${PG_ROLE})"

# RabbitMQ (its own Erlang VM; the service script daemonizes it). No consumer timeout: a task of a long workflow
# may stay unacknowledged for days (aiida-core's advice for RabbitMQ >= 3.8.15).
advanced='[{rabbit, [{consumer_timeout, undefined}]}].'
if [ "$(cat /etc/rabbitmq/advanced.config 2>/dev/null)" != "$advanced" ]; then
    echo "$advanced" > /etc/rabbitmq/advanced.config
    rabbitmqctl -q status >/dev/null 2>&1 && service rabbitmq-server restart >/dev/null
fi
if ! rabbitmqctl -q status >/dev/null 2>&1; then
    service rabbitmq-server start >/dev/null
fi
rabbitmqctl -q await_startup >/dev/null
echo "RabbitMQ: up (localhost:5672)"

# munge (SLURM's authentication)
[ -s /etc/munge/munge.key ] || mungekey --create --force >/dev/null 2>&1 || true
chown munge:munge /etc/munge/munge.key 2>/dev/null || true
pgrep -x munged >/dev/null || service munge start >/dev/null
echo "munge: up"

# SLURM: one node (this machine), one partition
host=$(hostname -s)
cpus=$(nproc)
memory=$(( $(awk '/MemTotal/{print $2}' /proc/meminfo) / 1024 - 1024 ))
mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
config=/etc/slurm/slurm.conf
wanted=$(cat <<EOF
# written by aiida-mlffdiff's .ci/services.sh: a one-node cluster on this machine for the test suite
ClusterName=mlffdiff
SlurmctldHost=${host}
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
MpiDefault=none
ReturnToService=2
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
NodeName=${host} CPUs=${cpus} RealMemory=${memory} State=UNKNOWN
PartitionName=debug Nodes=${host} Default=YES MaxTime=INFINITE State=UP
EOF
)
if [ ! -f "$config" ] || [ "$(cat "$config")" != "$wanted" ]; then
    echo "$wanted" > "$config"
    pkill -x slurmctld 2>/dev/null || true
    pkill -x slurmd 2>/dev/null || true
    sleep 1
fi
pgrep -x slurmctld >/dev/null || slurmctld
pgrep -x slurmd >/dev/null || slurmd
for _ in $(seq 30); do
    state=$(sinfo -h -N -o '%t' 2>/dev/null | head -1)
    case "$state" in idle|mix|alloc) break ;; down*|drain*) scontrol update nodename="$host" state=resume || true ;; esac
    sleep 1
done
echo "SLURM: $(sinfo -h -o '%P %a %D %t %C')"
