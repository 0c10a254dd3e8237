# Reference for change.reliable_change(method="HLM"): empirical-Bayes slopes of
# y ~ session + (1 + session | client) (REML) with their conditional SDs (lme4).
# Run: Rscript tests/reference/hlm_eb_slopes.R  (from the repository root)
library(lme4)
library(jsonlite)
d <- read.csv("tests/reference/data/hlm_eb_slopes.csv")
d$client <- factor(d$client)
fit <- lmer(y ~ session + (1 + session | client), data = d, REML = TRUE)
re <- as.data.frame(ranef(fit, condVar = TRUE))
re <- re[re$term == "session", ]
out <- list(
  fixed_slope = unname(fixef(fit)["session"]),
  client = as.character(re$grp),
  deviation = re$condval,
  condsd = re$condsd
)
write_json(out, "tests/reference/hlm_eb_slopes.json", digits = 10)
