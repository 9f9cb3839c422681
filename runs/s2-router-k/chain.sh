# wait for run K's end, then the router refit, then the test split (each from the frozen worktree /work/wt-j)
set -e
while [ ! -f /work/main/runs/s1-k/evaluation.json ]; do sleep 20; done
while pgrep -f "runs/s1-k" > /dev/null; do sleep 5; done
cd /work/wt-j
bash /work/main/runs/s2-router-k/command.sh > /work/main/runs/s2-router-k/log.txt 2>&1
cd /work/main
PYTHONPATH=/work/main bash runs/s2-router-k/eval-test.sh > runs/s2-router-k/eval-test.log 2>&1
