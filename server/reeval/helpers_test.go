package reeval

import "github.com/vigil-sec/vigil/score"

func scoreContext(exposed *bool) score.Context { return score.Context{NetworkExposed: exposed} }
