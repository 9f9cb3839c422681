# stage 1 from run I (runs/s2-sup01-i/model) on both cores, with less L_PESQ and more L_Sup: since L_PESQ came in
# at weight 0.1 (runs/s1-pesq-a) every model of the lineage keeps less of the clean speech's top bands (full width,
# clean speech in: 4-8 kHz energy 0.73 before it, 0.12 at run I), while L_PESQ outweighs L_Cmp about 5-10 to 1;
# at 0.02 the stage-1 probes of 2026-12-07 raised SI-SDR with PESQ-WB. Every width's own term at full weight and no
# routed call (a stage-1 update costs about half a stage-2 update); a cosine over 200 updates from 2e-4, 64
# segments an update (2 processes x 8 x 4 accumulated). The router is refitted afterwards (runs/s2-router-k).
# Resume after an interruption by adding --resume_from_checkpoint latest
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-i/model --model pesq_weight=0.02 suppression_weight=0.3 \
  --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 4 --gain_learning_rate 6.7e-2 \
  --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 --gradient_accumulation_steps 4 \
  --max_train_steps 200 --validation_steps 100 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 47 --output_dir /work/main/runs/s1-k "$@"
