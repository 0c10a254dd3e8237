# omega against psych where a single-start factor extraction can land on a worse solution
# (issue 16): bfi's Extraversion + Openness items (E1-E5, O1-O5) and psychTools' ability
# (16 ICAR items, 1525 respondents, pairwise correlations), 3 group factors each.
#
# Run from the repository root: Rscript tests/reference/psych_omega_multistart.R
# Writes tests/reference/psych_omega_multistart.json and the item data
# tests/reference/data/psych_bfi_eo.csv, tests/reference/data/psych_ability.csv.
# For each data set: psych::omega(x, nfactors = 3, fm = "minres", rotate = "oblimin")
# omega_h, omega_total, the Schmid-Leiman g loadings and h2, and the off-diagonal residual
# sum of squares (lower triangle) of psych's unrotated minres solution
# fa(r, 3, fm = "minres", rotate = "none"), which omega's extraction must not exceed.
suppressPackageStartupMessages({
  library(psych)
  library(psychTools)
  library(jsonlite)
})
out_dir <- "tests/reference"
data_dir <- file.path(out_dir, "data")
dir.create(data_dir, showWarnings = FALSE, recursive = TRUE)

one <- function(x) {
  r <- cor(x, use = "pairwise")
  o <- omega(x, nfactors = 3, fm = "minres", rotate = "oblimin", plot = FALSE)
  f <- fa(r, nfactors = 3, fm = "minres", rotate = "none", n.obs = nrow(x))
  L <- unclass(f$loadings)
  res <- r - L %*% t(L)
  list(omega_h = o$omega_h, omega_total = o$omega.tot, alpha = o$alpha,
       g = unname(o$schmid$sl[, 1]), h2 = unname(o$schmid$sl[, "h2"]),
       items = colnames(x),
       residual_ss = sum(res[lower.tri(res)]^2),
       communalities = unname(rowSums(L^2)))
}
eo <- psychTools::bfi[c(paste0("E", 1:5), paste0("O", 1:5))]
ability <- as.data.frame(psychTools::ability)
write.csv(eo, file.path(data_dir, "psych_bfi_eo.csv"), row.names = FALSE, na = "")
write.csv(ability, file.path(data_dir, "psych_ability.csv"), row.names = FALSE, na = "")
versions <- list(R = R.version.string, psych = as.character(packageVersion("psych")),
                 psychTools = as.character(packageVersion("psychTools")),
                 GPArotation = as.character(packageVersion("GPArotation")))
write(toJSON(list(versions = versions, bfi_eo = one(eo), ability = one(ability)),
             digits = NA, auto_unbox = TRUE, pretty = TRUE),
      file.path(out_dir, "psych_omega_multistart.json"))
cat("written\n")
