# the router refitted on run N's widths (runs/s1-n/model: stage 1 from run I with a tenth of the segments clean, router untouched), backbone frozen
# (--train_router_only): 20 updates of 64 segments (2 processes x 8 x 4 accumulated), the router's rate 3e-3 on a
# cosine, Gumbel noise gone by update 14, the stage-2 loss of run N (routed L_SE, L_Eff, L_Bal at target 0.25), then
# the calibration to u 0.25 on 64 training segments and the validation of the routed call (the widths are run N's, validated there)
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 --train_router_only \
  --init_from /work/main/runs/s1-n/model --target_utilization 0.25 \
  --learning_rate 3e-3 --router_learning_rate 3e-3 --gradient_accumulation_steps 4 --max_train_steps 20 \
  --gumbel_noise_decay_steps 14 --slimmable_weight 0 --validation_steps 0 --checkpointing_steps 5 \
  --validation_utilizations auto --max_valid_items 120 --seed 67 \
  --output_dir /work/main/runs/s2-router-n "$@"
