# Reference values for alliance.reliability, computed with R's psych package.
#
# Run from the repository root:   Rscript tests/reference/psych_reference.R
# Needs: psych, psychTools (bfi), GPArotation, lme4, nlme, jsonlite.
# Writes the input data to tests/reference/data/psych_*.csv and the values psych printed
# to tests/reference/psych_*.json. R is not needed to run the tests, only to regenerate.
#
# Data sources
# - bfi (psychTools): 2800 respondents, 25 personality items on 1-6; Revelle, W. (2024),
#   psychTools. Agreeableness A1-A5 (A1 reverse keyed) and Conscientiousness C1-C5
#   (C4, C5 reverse keyed), with their missing values; Neuroticism N1-N5 for omega.
# - attitude (R datasets): Chatterjee & Price (1977), 30 departments x 7 ratings.
# - sf: the 6 targets x 4 judges example of Shrout & Fleiss (1979), from psych's ICC docs.
# - shrout: the 5 persons x 4 times x 3 items example of Shrout & Lane (2012), from
#   psych's multilevel.reliability docs.
# - Thurstone (psych): 9-variable correlation matrix (n = 213) used in psych's omega docs.
# - Simulated here with fixed seeds: ICC ratings, rupture codes, repeated-measures items.

suppressPackageStartupMessages({
  library(psych)
  library(jsonlite)
})
out_dir <- "tests/reference"
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)
put_csv <- function(x, name) write.csv(x, file.path(data_dir, name), row.names = FALSE, na = "")
put_json <- function(x, name) {
  write(toJSON(x, digits = NA, auto_unbox = TRUE, pretty = TRUE, na = "null"),
        file.path(out_dir, name))
}
versions <- list(R = R.version.string, psych = as.character(packageVersion("psych")),
                 GPArotation = as.character(packageVersion("GPArotation")),
                 lme4 = as.character(packageVersion("lme4")),
                 nlme = as.character(packageVersion("nlme")))

# ---- alpha -------------------------------------------------------------------------------
bfi <- psychTools::bfi
put_csv(bfi[c(paste0("A", 1:5), paste0("C", 1:5), paste0("N", 1:5))], "psych_bfi_ac.csv")
put_csv(attitude, "psych_attitude.csv")

alpha_values <- function(a) {
  tot <- a$total
  list(raw_alpha = tot$raw_alpha, std_alpha = tot$std.alpha, g6 = tot[["G6(smc)"]],
       average_r = tot$average_r, s_n = tot[["S/N"]], ase = tot$ase, mean = tot$mean,
       sd = tot$sd, median_r = tot$median_r, feldt_low = a$feldt$lower.ci[[1]],
       feldt_high = a$feldt$upper.ci[[1]],
       drop_raw_alpha = a$alpha.drop$raw_alpha, r_drop = a$item.stats$r.drop)
}
alpha_ref <- list(
  versions = versions,
  bfi_agreeableness = c(list(items = paste0("A", 1:5), reverse = "A1"),
                        alpha_values(alpha(bfi[paste0("A", 1:5)], keys = "A1"))),
  bfi_conscientiousness = c(list(items = paste0("C", 1:5), reverse = c("C4", "C5")),
                            alpha_values(alpha(bfi[paste0("C", 1:5)], keys = c("C4", "C5")))),
  attitude = c(list(items = names(attitude), reverse = character(0)),
               alpha_values(alpha(attitude)))
)
put_json(alpha_ref, "psych_alpha.json")

# ---- ICC ---------------------------------------------------------------------------------
sf <- matrix(c(9, 2, 5, 8, 6, 1, 3, 2, 8, 4, 6, 8, 7, 1, 2, 6, 10, 5, 6, 9, 6, 2, 4, 7),
             ncol = 4, byrow = TRUE)
colnames(sf) <- paste0("J", 1:4)
put_csv(as.data.frame(sf), "psych_sf.csv")
set.seed(20240611)
target <- rnorm(30, 0, 2)
judge_bias <- c(0, 0.5, -0.3, 1)
ratings <- sapply(judge_bias, function(b) round(5 + target + b + rnorm(30, 0, 1), 1))
colnames(ratings) <- paste0("rater", 1:4)
put_csv(as.data.frame(ratings), "psych_icc_sim.csv")
icc_values <- function(x) {
  r <- ICC(x, lmer = FALSE)$results
  list(type = r$type, ICC = r$ICC, F = r$F, df1 = r$df1, df2 = r$df2, p = r$p,
       lower = r[["lower bound"]], upper = r[["upper bound"]])
}
put_json(list(versions = versions, note = "psych::ICC(x, lmer = FALSE)",
              sf = icc_values(sf), sim = icc_values(ratings)), "psych_icc.json")

# ---- Cohen's kappa -----------------------------------------------------------------------
bates <- data.frame(rater1 = c(1, 2, 3, 4, 5, 6, 7, 8, 9),
                    rater2 = c(1, 3, 1, 6, 1, 5, 5, 6, 7))
put_csv(bates, "psych_kappa_bates.csv")
set.seed(7)
truth <- sample(0:2, 150, replace = TRUE, prob = c(0.6, 0.25, 0.15))
recode <- function(v, p) ifelse(runif(length(v)) < p, sample(0:2, length(v), TRUE), v)
codes <- data.frame(coder1 = recode(truth, 0.2), coder2 = recode(truth, 0.3))
put_csv(codes, "psych_kappa_codes.csv")
kappa_values <- function(x) {
  k <- cohen.kappa(x)
  list(kappa = k$kappa, weighted_kappa = k$weighted.kappa, var_kappa = k$var.kappa,
       var_weighted = k$var.weighted, lower = k$confid[, "lower"],
       upper = k$confid[, "upper"], n = k$n.obs)
}
put_json(list(versions = versions,
              note = "psych::cohen.kappa(x); default weights 1 - (i - j)^2 / (k - 1)^2",
              bates = kappa_values(bates), codes = kappa_values(codes)), "psych_kappa.json")

# ---- multilevel.reliability (Shrout & Lane 2012) -----------------------------------------
shrout <- data.frame(
  Person = rep(1:5, 4), Time = rep(1:4, each = 5),
  Item1 = c(2, 3, 6, 3, 7, 3, 5, 6, 3, 8, 4, 4, 7, 5, 6, 1, 5, 8, 8, 6),
  Item2 = c(3, 4, 6, 4, 8, 3, 7, 7, 5, 8, 2, 6, 8, 6, 7, 3, 9, 9, 7, 8),
  Item3 = c(6, 4, 5, 3, 7, 4, 7, 8, 9, 9, 5, 7, 9, 7, 8, 4, 7, 9, 9, 6))
put_csv(shrout, "psych_shrout.csv")
set.seed(2012)
n_id <- 40; n_time <- 5; n_item <- 4
grid <- expand.grid(time = 1:n_time, client = 1:n_id)
u_id <- rnorm(n_id, 0, 0.8)
u_time <- rnorm(n_time, 0, 0.2)
u_idtime <- rnorm(nrow(grid), 0, 0.5)
u_item <- c(0, 0.3, -0.2, 0.1)
sim <- grid[c("client", "time")]
for (j in 1:n_item) {
  u_iditem <- rnorm(n_id, 0, 0.3)
  v <- 4 + u_id[sim$client] + u_time[sim$time] + u_idtime + u_item[j] +
    u_iditem[sim$client] + rnorm(nrow(grid), 0, 0.6)
  sim[[paste0("item", j)]] <- pmin(pmax(round(v), 1), 7)
}
put_csv(sim, "psych_ml_sim.csv")
ml_values <- function(x, grp, time, items) {
  a <- multilevel.reliability(x, grp = grp, Time = time, items = items, alpha = FALSE,
                              aov = TRUE, lmer = FALSE, lme = TRUE)
  b <- multilevel.reliability(x, grp = grp, Time = time, items = items, alpha = FALSE,
                              aov = FALSE, lmer = TRUE, lme = FALSE)
  comp <- a$components
  list(n_obs = a$n.obs, n_time = a$n.time, n_items = a$n.items,
       aov = list(RkF = a$RkF, R1R = a$R1R, RkR = a$RkR, Rc = a$Rc,
                  components = setNames(as.list(comp[1:7, 1]), rownames(comp)[1:7])),
       nlme = list(RkRn = a$RkRn, Rcn = a$Rcn, id = comp["id", 1],
                   id_time = comp["id(time)", 1], residual = comp["residual", 1]),
       lmer = list(RkF = b$RkF, R1R = b$R1R, RkR = b$RkR, Rc = b$Rc, RkRn = b$RkRn,
                   Rcn = b$Rcn,
                   components = setNames(as.list(b$components[1:7, 1]),
                                         rownames(b$components)[1:7])))
}
put_json(list(versions = versions,
              note = paste("psych::multilevel.reliability: 'aov' and 'nlme' from",
                           "aov = TRUE, lmer = FALSE, lme = TRUE; 'lmer' from aov = FALSE,",
                           "lmer = TRUE, lme = FALSE (crossed lmer and nested lmer)"),
              shrout = ml_values(shrout, "Person", "Time", c("Item1", "Item2", "Item3")),
              sim = ml_values(sim, "client", "time", paste0("item", 1:n_item))),
         "psych_multilevel.json")
# ---- omega (Schmid-Leiman; minres extraction, oblimin rotation) -----------------------------
put_csv(as.data.frame(Thurstone), "psych_thurstone.csv")
omega_values <- function(o) {
  list(omega_h = o$omega_h, omega_total = o$omega.tot, omega_limit = o$omega.lim,
       alpha = o$alpha, g6 = o$G6, g = unname(o$schmid$sl[, 1]),
       h2 = unname(o$schmid$sl[, "h2"]))
}
om_thurstone <- omega(Thurstone, nfactors = 3, fm = "minres", rotate = "oblimin",
                      n.obs = 213, plot = FALSE)
om_bfi <- omega(bfi[c(paste0("A", 1:5), paste0("C", 1:5), paste0("N", 1:5))], nfactors = 3,
                fm = "minres", rotate = "oblimin", plot = FALSE)
put_json(list(versions = versions,
              note = paste("psych::omega(x, nfactors = 3, fm = 'minres', rotate = 'oblimin');",
                           "Pearson correlations (pairwise for raw data), flip = TRUE"),
              thurstone = omega_values(om_thurstone), bfi_acn = omega_values(om_bfi)),
         "psych_omega.json")
cat("written to", out_dir, "\n")
