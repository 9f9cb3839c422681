# probe: run K's stage 1 from run I with the middle dose, L_PESQ at 0.05 (K: 0.02, I: 0.1) and L_Sup 0.3, a short
# cosine (70 updates from 2e-4) on both cores, validation of every width at the end: where does the PESQ-WB /
# SI-SDR / voice trade land between runs I and K? (compare with run K's validation at update 100)
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s2-sup01-i/model --model pesq_weight=0.05 suppression_weight=0.3 \
  --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 4 --gain_learning_rate 6.7e-2 \
  --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 --gradient_accumulation_steps 4 \
  --max_train_steps 70 --validation_steps 0 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 51 --output_dir /work/main/runs/s1-l "$@"
