# git test split, 120 clips: run F (runs/s2-sup01-f) at every width, routed, and the peers; one process (run G
# trains on the other core)
python scripts/evaluate.py --model runs/s2-sup01-f/model --data_dir data/corpus-git-v1 --split test --max_items 120 \
  --metrics pesq,si_sdr,dnsmos --threads 1 --processes 1 --no_progress --output_dir runs/eval-s2sup01f-test "$@"
