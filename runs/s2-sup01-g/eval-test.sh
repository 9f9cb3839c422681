# git test split, 120 clips: run G (runs/s2-sup01-g) at every width, routed, and the peers; 2 worker process(es)
python scripts/evaluate.py --model runs/s2-sup01-g/model --data_dir data/corpus-git-v1 --split test --max_items 120 \
  --metrics pesq,si_sdr,dnsmos --threads 1 --processes 2 --no_progress --output_dir runs/eval-s2sup01g-test "$@"
