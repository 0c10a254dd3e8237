# Reference values for alliance.models.lmm on crossed, partially crossed and external designs.
#
# Run from the repository root:
#   Rscript tests/reference/lme4_crossed_reference.R
# It writes the datasets to tests/reference/data/lme4_*.csv (lme4 and nlme datasets, GPL;
# see tests/reference/data/README.md) and the fits to tests/reference/lme4_*.json in the
# format of lme4_reference.R (same fitting and polishing). Factors whose reference level R
# and formulaic would choose differently are written as 0/1 columns; ids get a letter prefix
# so that they stay text.
suppressPackageStartupMessages({
  library(lme4)
  library(lmerTest)
  library(nlme, exclude = "lmList")
  library(jsonlite)
})

here <- "tests/reference"
ctrl <- lmerControl(
  optimizer = "bobyqa",
  optCtrl = list(maxfun = 1e5, rhobeg = 0.2, rhoend = 1e-12),
  check.conv.singular = "ignore"
)
write_data <- function(d, name) {
  write.csv(d, file.path(here, "data", paste0(name, ".csv")), row.names = FALSE)
  name
}

# ---- datasets
pen <- data.frame(diameter = Penicillin$diameter, plate = as.character(Penicillin$plate),
                  sample = as.character(Penicillin$sample))
pastes <- data.frame(strength = Pastes$strength, batch = as.character(Pastes$batch),
                     cask = as.character(Pastes$cask), sample = as.character(Pastes$sample))
sleep <- data.frame(Reaction = sleepstudy$Reaction, Days = sleepstudy$Days,
                    Subject = paste0("S", sleepstudy$Subject))
orth <- data.frame(distance = Orthodont$distance, age = Orthodont$age,
                   female = as.integer(Orthodont$Sex == "Female"),
                   Subject = as.character(Orthodont$Subject))
mach <- data.frame(score = Machines$score, Machine = as.character(Machines$Machine),
                   Worker = paste0("W", as.character(Machines$Worker)))
math <- data.frame(MathAch = MathAchieve$MathAch, SES = MathAchieve$SES,
                   MEANSES = MathAchieve$MEANSES,
                   minority = as.integer(MathAchieve$Minority == "Yes"),
                   School = paste0("K", as.character(MathAchieve$School)))
# InstEval subset: the first 400 students (all their ratings); service as 0/1
ie <- InstEval[as.integer(as.character(InstEval$s)) <= 400, ]
inst <- data.frame(y = ie$y, service = as.integer(ie$service == "1"),
                   s = paste0("s", ie$s), d = paste0("d", ie$d), dept = paste0("p", ie$dept))
# partially crossed: 120 clients, 20 therapists; a third of the clients see a second
# therapist after session 6 (clients by two therapists)
set.seed(20261202)
nc <- 120; nt <- 20; ns <- 10
t1 <- sample(nt, nc, replace = TRUE)
t2 <- ifelse(runif(nc) < 1 / 3, (t1 + sample(1:(nt - 1), nc, replace = TRUE) - 1) %% nt + 1, t1)
rows <- expand.grid(session = 0:(ns - 1), client = 1:nc)
rows$therapist <- ifelse(rows$session < 6, t1[rows$client], t2[rows$client])
u_c <- rnorm(nc, 0, 3); s_c <- rnorm(nc, 0, 0.3); u_t <- rnorm(nt, 0, 1.5)
rows$alliance <- round(rnorm(nrow(rows), 5, 1), 2)
rows$phq9 <- round(14 + u_c[rows$client] + (s_c[rows$client] - 0.5) * rows$session +
  u_t[rows$therapist] - 0.8 * (rows$alliance - 5) + rnorm(nrow(rows), 0, 2), 3)
pc <- data.frame(phq9 = rows$phq9, alliance = rows$alliance, session = rows$session,
                 client = sprintf("c%03d", rows$client), therapist = sprintf("t%02d", rows$therapist))

designs <- list(
  list(name = "penicillin", data = write_data(pen, "lme4_penicillin"), reml = TRUE,
       formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list(name = "penicillin_ml", data = "lme4_penicillin", reml = FALSE,
       formula = "diameter ~ 1 + (1 | plate) + (1 | sample)"),
  list(name = "pastes", data = write_data(pastes, "lme4_pastes"), reml = TRUE,
       formula = "strength ~ 1 + (1 | batch) + (1 | sample)"),
  list(name = "pastes_crossed", data = "lme4_pastes", reml = TRUE,
       formula = "strength ~ 1 + (1 | batch) + (1 | cask)"),
  list(name = "insteval", data = write_data(inst, "lme4_insteval"), reml = FALSE,
       formula = "y ~ service + (1 | s) + (1 | d) + (1 | dept)"),
  list(name = "partially_crossed", data = write_data(pc, "lme4_partially_crossed"), reml = TRUE,
       formula = "phq9 ~ alliance + session + (1 + session | client) + (1 | therapist)"),
  list(name = "sleepstudy", data = write_data(sleep, "lme4_sleepstudy"), reml = TRUE,
       formula = "Reaction ~ Days + (Days | Subject)"),
  list(name = "orthodont", data = write_data(orth, "lme4_orthodont"), reml = TRUE,
       formula = "distance ~ age + female + (age | Subject)"),
  list(name = "machines", data = write_data(mach, "lme4_machines"), reml = TRUE,
       formula = "score ~ Machine + (1 | Worker) + (1 | Worker:Machine)"),
  list(name = "mathachieve", data = write_data(math, "lme4_mathachieve"), reml = TRUE,
       formula = "MathAch ~ SES + MEANSES + minority + (1 + SES | School)")
)

for (d in designs) {
  data <- read.csv(file.path(here, "data", paste0(d$data, ".csv")), stringsAsFactors = FALSE)
  fit <- lmer(as.formula(d$formula), data = data, REML = d$reml, control = ctrl)
  fit2 <- update(fit, start = getME(fit, "theta"),
                 control = lmerControl(optimizer = "Nelder_Mead",
                                       optCtrl = list(maxfun = 1e5, FtolAbs = 1e-14,
                                                      FtolRel = 1e-15, XtolRel = 1e-12),
                                       check.conv.singular = "ignore"))
  if (deviance(fit2, REML = d$reml) < deviance(fit, REML = d$reml)) fit <- fit2
  coefs <- summary(fit, ddf = "Satterthwaite")$coefficients
  vc <- as.data.frame(VarCorr(fit))
  vc$var1[is.na(vc$var1)] <- ""
  vc$var2[is.na(vc$var2)] <- ""
  re <- lapply(ranef(fit), function(r) {
    list(levels = rownames(r), terms = colnames(r), values = unname(as.matrix(r)))
  })
  out <- list(
    name = d$name, data = paste0("data/", d$data, ".csv"), formula = d$formula,
    reml = d$reml, nobs = nobs(fit), ngroups = as.list(ngrps(fit)),
    fixef = list(term = I(rownames(coefs)), estimate = I(unname(coefs[, "Estimate"])),
                 se = I(unname(coefs[, "Std. Error"])), df = I(unname(coefs[, "df"])),
                 t = I(unname(coefs[, "t value"])), p = I(unname(coefs[, "Pr(>|t|)"]))),
    vcov = unname(as.matrix(vcov(fit))),
    varcorr = list(grp = vc$grp, var1 = vc$var1, var2 = vc$var2,
                   vcov = vc$vcov, sdcor = vc$sdcor),
    sigma = sigma(fit), theta = unname(getME(fit, "theta")),
    loglik = as.numeric(logLik(fit)), aic = AIC(fit), bic = BIC(fit),
    singular = isSingular(fit, tol = 1e-4), ranef = re,
    versions = list(R = R.version.string, lme4 = as.character(packageVersion("lme4")),
                    lmerTest = as.character(packageVersion("lmerTest")))
  )
  write(toJSON(out, digits = NA, auto_unbox = TRUE, pretty = TRUE),
        file.path(here, paste0("lme4_", d$name, ".json")))
  cat(sprintf("%-18s loglik %.8f singular %s\n", d$name, out$loglik, out$singular))
}
