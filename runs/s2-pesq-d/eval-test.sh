# git test split, 120 clips: the stage-2 model from run D (runs/s2-pesq-d) at every width, routed, and the peers
# (one process: the other core was training run E)
python scripts/evaluate.py --model runs/s2-pesq-d/model --data_dir data/corpus-git-v1 --split test --max_items 120 \
  --metrics pesq,si_sdr,dnsmos --threads 1 --no_progress --output_dir runs/eval-s2pesqd-test
