import MutantIDs

// Every double, grouped by series (one file each).  A test holds the catalog to MutantID:
// each mutant identifier has exactly one double.

extension KernelDoubles {
    public static let models: [KernelDouble] = [debugCR3Model, conditionalSyncModel]
    public static let mutants: [KernelDouble] = blockIRQ + guestDebug + pvmGuestDebug + syncRegsMutants + oneRegMutants
        + debugCtlMutants + debugCR3Mutants + msrMutants
    public static let catalog: [KernelDouble] = models + mutants
}
