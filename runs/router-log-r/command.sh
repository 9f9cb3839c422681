# probe: the router alone (backbone frozen) refitted on run F's weights with routed_loss=log (the mean over items
# of log L_SE, so width goes where it improves an item by the larger ratio; run F's router spends about the same
# on every input SNR while width gains most PESQ-WB on the cleaner clips); 20 updates of 64 segments, the router's
# rate 3e-3 on a cosine, Gumbel noise gone by update 14, then the calibration to u 0.25 and the validation
python scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 --train_router_only \
  --init_from /work/main/runs/s2-sup01-f/model --model suppression_weight=0.1 routed_loss=log --target_utilization 0.25 \
  --learning_rate 3e-3 --router_learning_rate 3e-3 --gradient_accumulation_steps 8 --max_train_steps 20 \
  --gumbel_noise_decay_steps 14 --slimmable_weight 0 --validation_steps 0 --checkpointing_steps 5 \
  --max_valid_items 120 --seed 45 --output_dir /work/main/runs/router-log-r "$@"
