#!/usr/bin/env bash
# The Slurm profile for real: a one-node Slurm cluster on this machine (Debian's packages; daemons started by hand, so
# no systemd; proctrack/linuxproc and task/none, so no cgroups; no accounting), then the workflow through
# workflow/profiles/slurm. One tiny toy cell must build through sbatch, and a job that fails must fail the run.
# Needs root (apt-get, daemons). Usage: bash .ci/slurm_test.sh  (after `make setup`)
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
start=$SECONDS
export OMP_NUM_THREADS=1 TRL_EXPERIMENTAL_SILENCE=1
. "$ROOT/.venv/bin/activate"

# --- packages --------------------------------------------------------------------------------------------------
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v munged >/dev/null \
    || ! command -v sbatch >/dev/null; then
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends \
    slurmctld slurmd slurm-client munge >/dev/null
fi
echo "slurm: packages ready after $((SECONDS - start)) s ($(slurmctld -V))"

# --- a private munged and Slurm, everything under one temporary folder ----------------------------------------
WORK="$(mktemp -d /tmp/slurm_test.XXXXXX)"
chmod 755 "$WORK"
mkdir -p "$WORK/munge" "$WORK/state" "$WORK/spool" "$WORK/log" "$WORK/wf"
PIDS=()
cleanup() {
  local rc=$?
  local pids=()
  for pidfile in "${PIDS[@]}"; do [ -s "$pidfile" ] && pids+=("$(cat "$pidfile")"); done
  [ "${#pids[@]}" -gt 0 ] && kill "${pids[@]}" 2>/dev/null || true
  for _ in $(seq 30); do kill -0 "${pids[@]}" 2>/dev/null || break; sleep 0.5; done  # ports free for a rerun
  if [ -e "$WORK/slurm.conf.saved" ]; then cp -p "$WORK/slurm.conf.saved" /etc/slurm/slurm.conf; else rm -f /etc/slurm/slurm.conf; fi
  if [ "$rc" -ne 0 ]; then tail -n 30 "$WORK"/log/*.log 2>/dev/null || true; fi
  exit "$rc"
}
trap cleanup EXIT

head -c 1024 /dev/urandom >"$WORK/munge/munge.key"
chmod 755 "$WORK/munge" && chmod 400 "$WORK/munge/munge.key" && chown -R munge:munge "$WORK/munge"  # clients reach the socket; the key stays 400
SOCKET="$WORK/munge/munge.socket"
runuser -u munge -- munged --key-file "$WORK/munge/munge.key" --socket "$SOCKET" \
  --pid-file "$WORK/munge/munged.pid" --seed-file "$WORK/munge/munged.seed" --log-file "$WORK/munge/munged.log"
PIDS+=("$WORK/munge/munged.pid")

NODE="$(hostname -s)"
MEM_MB=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) * 9 / 10 / 1024 ))
# The default path: job steps (srun inside sbatch) do not inherit SLURM_CONF. A config already there is put back.
SLURM_CONF=/etc/slurm/slurm.conf
[ -e "$SLURM_CONF" ] && cp -p "$SLURM_CONF" "$WORK/slurm.conf.saved"
cat >"$SLURM_CONF" <<EOF
ClusterName=ci
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$SOCKET
SlurmctldPort=${SLURMCTLD_PORT:-6817}
SlurmdPort=${SLURMD_PORT:-6818}
StateSaveLocation=$WORK/state
SlurmdSpoolDir=$WORK/spool
SlurmctldPidFile=$WORK/slurmctld.pid
SlurmdPidFile=$WORK/slurmd.pid
SlurmctldLogFile=$WORK/log/slurmctld.log
SlurmdLogFile=$WORK/log/slurmd.log
# No cgroups and no systemd in a container: track processes by parent id, bind no tasks.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
# No accounting daemon: sacct cannot answer, so snakemake asks squeue, which keeps finished jobs for MinJobAge s.
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
# Jobs are requeueable only if submitted with --requeue, so the requeue check below tests the profile's setting.
JobRequeue=0
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
ReturnToService=2
NodeName=$NODE NodeAddr=127.0.0.1 CPUs=$(nproc --all) RealMemory=$MEM_MB State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -f "$SLURM_CONF"
PIDS+=("$WORK/slurmctld.pid")
slurmd -f "$SLURM_CONF"
PIDS+=("$WORK/slurmd.pid")
for _ in $(seq 60); do
  [ "$(sinfo -h -n "$NODE" -o %T 2>/dev/null)" = idle ] && break
  sleep 1
done
[ "$(sinfo -h -n "$NODE" -o %T)" = idle ] || { echo "slurm: node $NODE never became idle"; sinfo; exit 1; }
echo "slurm: node $NODE idle after $((SECONDS - start)) s"

# --- the workflow through the profile ------------------------------------------------------------------------
# The profile as shipped, plus what this cluster needs: squeue for job status (no accounting), a fast
# first status check, no retry (a failure must surface at once); a hung run is stopped after 10 min.
SNAKEMAKE=(timeout 600 snakemake --snakefile "$ROOT/Snakefile" --directory "$WORK/wf" --profile "$ROOT/workflow/profiles/slurm"
  --slurm-status-command squeue --slurm-init-seconds-before-status-checks 2 --retries 0)
TARGET=results/slurmci/toy/lambda_grpo/n1_r-1.0/seed0.csv
cat >"$WORK/wf/tiny.yaml" <<'EOF'
profile: slurmci
toy: {methods: [lambda_grpo], n: [1], r_neg: [-1.0], seeds: [0], steps: 6, last_steps: 3}
EOF

t0=$SECONDS
"${SNAKEMAKE[@]}" "$TARGET" --configfile "$WORK/wf/tiny.yaml" >"$WORK/log/good.log" 2>&1 \
  || { tail -n 40 "$WORK/log/good.log"; exit 1; }
python - "$WORK/wf/$TARGET" <<'EOF'
import sys
import pandas as pd
run = pd.read_csv(sys.argv[1])
assert list(run.step) == list(range(1, 7)), run.step.tolist()
assert run.target_freq.between(0, 1).all(), run.target_freq.tolist()
# the batched engine's columns: where the policy's probability sits (T, T's penalised subtree, the rest) sums to 1
mass = run[["mass_target", "mass_penalised", "mass_other"]]
assert mass.ge(-1e-6).all().all() and (mass.sum(axis=1) - 1).abs().lt(1e-5).all(), mass
assert run.learning_rate.nunique() == 1  # the rate the job's sweep selected
EOF
# The job really went through Slurm: snakemake names the job id, and Slurm has it as completed.
JOBID="$(sed -n 's/.*submitted with SLURM jobid \([0-9]*\).*/\1/p' "$WORK/log/good.log" | head -n 1)"
scontrol show job "${JOBID:?no Slurm job id in the snakemake log}" | grep -q "JobState=COMPLETED" \
  || { echo "slurm: job $JOBID not completed"; scontrol show job "$JOBID"; exit 1; }
echo "slurm: toy cell built through sbatch (job $JOBID) and valid ($((SECONDS - t0)) s)"

# A job that fails inside Slurm: 3 heads do not divide width 64, which only the job's model constructor notices.
t0=$SECONDS
sed 's/^profile: slurmci/profile: slurmfail/; s/steps: 6/steps: 6, tiny_model: {n_layer: 1, n_head: 3, n_embd: 64}/' \
  "$WORK/wf/tiny.yaml" >"$WORK/wf/fail.yaml"
if "${SNAKEMAKE[@]}" "${TARGET/slurmci/slurmfail}" --configfile "$WORK/wf/fail.yaml" >"$WORK/log/fail.log" 2>&1; then
  echo "slurm: the failing job was reported as a success"; tail -n 40 "$WORK/log/fail.log"; exit 1
fi
grep -q "Error in rule train_toy" "$WORK/log/fail.log" || { tail -n 40 "$WORK/log/fail.log"; exit 1; }
# The rule's log (kept for failed jobs; the shell sends the command's output there, as every rule's does) holds the
# job's own one-line error. The first job to build the model is the learning-rate sweep's (train_toy_sweep).
FAIL_LOG="$WORK/wf/results/slurmfail/logs/toy_sweep/lambda_grpo.log"
grep -q "must be divisible by num_heads" "$FAIL_LOG" \
  || { echo "slurm: the rule's log lacks the error"; cat "$FAIL_LOG"; exit 1; }
echo "slurm: failing job reported as failed ($((SECONDS - t0)) s)"
# A job killed while running (as on preemption or node failure) is requeued by Slurm and the run still succeeds.
t0=$SECONDS
# (a profile of its own, so its learning-rate sweep and run start afresh; the first running job is killed)
sed 's/^profile: slurmci/profile: slurmrq/; s/steps: 6/steps: 40/' "$WORK/wf/tiny.yaml" >"$WORK/wf/requeue.yaml"
"${SNAKEMAKE[@]}" "${TARGET/slurmci/slurmrq}" --configfile "$WORK/wf/requeue.yaml" >"$WORK/log/requeue.log" 2>&1 &
SNAKE_PID=$!
RUNNING=""
for _ in $(seq 120); do
  RUNNING="$(squeue -h -t RUNNING -o %i | head -n 1)"
  [ -n "$RUNNING" ] && break
  sleep 0.5
done
[ -n "$RUNNING" ] || { echo "slurm: the requeue job never ran"; exit 1; }
sleep 3
scontrol requeue "$RUNNING"
wait "$SNAKE_PID" || { echo "slurm: the requeued job failed the run"; tail -n 40 "$WORK/log/requeue.log"; exit 1; }
scontrol show job "$RUNNING" | grep -q "Restarts=1" || { echo "slurm: job $RUNNING was not restarted"; exit 1; }
[ "$(wc -l <"$WORK/wf/${TARGET/slurmci/slurmrq}")" -eq 41 ] || { echo "slurm: requeued run incomplete"; exit 1; }
echo "slurm: job $RUNNING killed while running, requeued, run succeeded ($((SECONDS - t0)) s)"
echo "slurm: all checks passed in $((SECONDS - start)) s"
