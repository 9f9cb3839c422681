# git test split, 120 clips: run H (runs/s2-sup0-h) at every width, routed, and the peers; 2 worker processes
python scripts/evaluate.py --model runs/s2-sup0-h/model --data_dir data/corpus-git-v1 --split test --max_items 120 \
  --metrics pesq,si_sdr,dnsmos --threads 1 --processes 2 --no_progress --output_dir runs/eval-s2sup0h-test "$@"
