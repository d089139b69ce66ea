//! The code tables of `charaka generate`.
//!
//! ICD-10-CM codes are billable codes of the FY2026 code set, with their
//! official short-form descriptions, checked against the CDC's April 2026
//! release (`code-list-April-2026.txt`). LOINC, SNOMED CT, RxNorm and CVX
//! codes are the ones Synthea uses (most appear in
//! `shared/data/synthea-sample`) or well-known codes; units are UCUM.

pub const ICD10CM: &str = "http://hl7.org/fhir/sid/icd-10-cm";
pub const LOINC: &str = "http://loinc.org";
pub const SNOMED: &str = "http://snomed.info/sct";
pub const RXNORM: &str = "http://www.nlm.nih.gov/research/umls/rxnorm";
pub const CVX: &str = "http://hl7.org/fhir/sid/cvx";
pub const UCUM: &str = "http://unitsofmeasure.org";

/// A code with its display.
pub type Code = (&'static str, &'static str);

/// Who a condition can affect.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum Sex {
    Any,
    Female,
}

/// A long-term condition: who gets it, what is prescribed and measured.
pub struct Chronic {
    pub icd: Code,
    pub min_age: u32,
    /// Share of patients over `min_age` who have it by about 60.
    pub share: f64,
    pub sex: Sex,
    /// RxNorm codes (see [`MEDICATIONS`]).
    pub meds: &'static [&'static str],
    pub labs: LabSet,
}

/// The labs ordered at a follow-up.
#[derive(Clone, Copy, PartialEq, Eq)]
pub enum LabSet {
    None,
    Metabolic,
    Lipids,
    Diabetes,
    Renal,
    Blood,
    Thyroid,
}

pub const CHRONIC: &[Chronic] = &[
    chronic(
        ("I10", "Essential (primary) hypertension"),
        25,
        0.30,
        &["314076", "197361", "316049"],
        LabSet::Metabolic,
    ),
    chronic(
        ("E78.5", "Hyperlipidemia, unspecified"),
        30,
        0.22,
        &["259255", "312961"],
        LabSet::Lipids,
    ),
    chronic(
        ("E78.00", "Pure hypercholesterolemia, unspecified"),
        30,
        0.05,
        &["312961"],
        LabSet::Lipids,
    ),
    chronic(
        ("E11.9", "Type 2 diabetes mellitus without complications"),
        30,
        0.11,
        &["860975"],
        LabSet::Diabetes,
    ),
    chronic(("R73.03", "Prediabetes"), 25, 0.10, &[], LabSet::Diabetes),
    chronic(
        ("E66.9", "Obesity, unspecified"),
        18,
        0.15,
        &[],
        LabSet::None,
    ),
    chronic(
        ("J45.909", "Unspecified asthma, uncomplicated"),
        3,
        0.08,
        &["745679", "895994"],
        LabSet::None,
    ),
    chronic(
        (
            "J44.9",
            "Chronic obstructive pulmonary disease, unspecified",
        ),
        45,
        0.05,
        &["896209", "745679"],
        LabSet::None,
    ),
    chronic(
        (
            "F32.9",
            "Major depressive disorder, single episode, unspecified",
        ),
        16,
        0.07,
        &[],
        LabSet::None,
    ),
    chronic(
        ("F41.1", "Generalized anxiety disorder"),
        16,
        0.06,
        &[],
        LabSet::None,
    ),
    chronic(
        (
            "K21.9",
            "Gastro-esophageal reflux disease without esophagitis",
        ),
        20,
        0.10,
        &[],
        LabSet::None,
    ),
    chronic(
        ("E03.9", "Hypothyroidism, unspecified"),
        20,
        0.05,
        &["966222"],
        LabSet::Thyroid,
    ),
    chronic(
        (
            "I25.10",
            "Atherosclerotic heart disease of native coronary artery without angina pectoris",
        ),
        45,
        0.06,
        &["243670", "309362"],
        LabSet::Lipids,
    ),
    chronic(
        ("I48.91", "Unspecified atrial fibrillation"),
        55,
        0.03,
        &["866414"],
        LabSet::None,
    ),
    chronic(
        ("I50.9", "Heart failure, unspecified"),
        55,
        0.02,
        &["866414"],
        LabSet::Metabolic,
    ),
    chronic(
        ("N18.30", "Chronic kidney disease, stage 3 unspecified"),
        50,
        0.04,
        &[],
        LabSet::Renal,
    ),
    chronic(
        (
            "G43.909",
            "Migraine, unspecified, not intractable, without status migrainosus",
        ),
        12,
        0.06,
        &[],
        LabSet::None,
    ),
    chronic(
        ("M17.11", "Unilateral primary osteoarthritis, right knee"),
        50,
        0.06,
        &["849574"],
        LabSet::None,
    ),
    chronic(
        ("E55.9", "Vitamin D deficiency, unspecified"),
        18,
        0.05,
        &[],
        LabSet::None,
    ),
    chronic(
        ("D64.9", "Anemia, unspecified"),
        10,
        0.04,
        &["310325"],
        LabSet::Blood,
    ),
    chronic(
        ("J30.9", "Allergic rhinitis, unspecified"),
        5,
        0.10,
        &["665078"],
        LabSet::None,
    ),
    chronic(
        ("G47.33", "Obstructive sleep apnea (adult) (pediatric)"),
        30,
        0.04,
        &[],
        LabSet::None,
    ),
    chronic(
        ("F17.210", "Nicotine dependence, cigarettes, uncomplicated"),
        16,
        0.10,
        &[],
        LabSet::None,
    ),
    chronic(("M79.7", "Fibromyalgia"), 25, 0.02, &[], LabSet::None),
    chronic(
        ("K58.9", "Irritable bowel syndrome, unspecified"),
        18,
        0.04,
        &[],
        LabSet::None,
    ),
    chronic(
        (
            "F90.9",
            "Attention-deficit hyperactivity disorder, unspecified type",
        ),
        5,
        0.05,
        &[],
        LabSet::None,
    ),
    chronic(("L70.0", "Acne vulgaris"), 12, 0.05, &[], LabSet::None),
    Chronic {
        sex: Sex::Female,
        ..chronic(
            (
                "M81.0",
                "Age-related osteoporosis without current pathological fracture",
            ),
            55,
            0.10,
            &["904419"],
            LabSet::None,
        )
    },
    Chronic {
        sex: Sex::Female,
        ..chronic(
            ("N95.1", "Menopausal and female climacteric states"),
            45,
            0.20,
            &[],
            LabSet::None,
        )
    },
];

const fn chronic(
    icd: Code,
    min_age: u32,
    share: f64,
    meds: &'static [&'static str],
    labs: LabSet,
) -> Chronic {
    Chronic {
        icd,
        min_age,
        share,
        sex: Sex::Any,
        meds,
        labs,
    }
}

/// A short illness seen at a visit for a symptom or in the emergency room.
pub struct Acute {
    pub icd: Code,
    pub ages: (u32, u32),
    pub meds: &'static [&'static str],
    /// SNOMED procedure done for it, if any (see [`PROCEDURES`]).
    pub procedure: Option<&'static str>,
    /// Days until it resolves.
    pub days: u32,
}

pub const SYMPTOM_VISIT: &[Acute] = &[
    acute(
        ("J06.9", "Acute upper respiratory infection, unspecified"),
        (0, 120),
        &["313782"],
        None,
        10,
    ),
    acute(
        ("J02.9", "Acute pharyngitis, unspecified"),
        (3, 120),
        &["834102"],
        Some("117015009"),
        10,
    ),
    acute(
        ("J20.9", "Acute bronchitis, unspecified"),
        (0, 120),
        &["313782"],
        None,
        21,
    ),
    acute(
        ("J01.90", "Acute sinusitis, unspecified"),
        (5, 120),
        &["562251"],
        None,
        14,
    ),
    acute(
        ("H66.90", "Otitis media, unspecified, unspecified ear"),
        (0, 12),
        &["562251"],
        None,
        10,
    ),
    acute(
        ("R05.9", "Cough, unspecified"),
        (0, 120),
        &["1043400"],
        None,
        14,
    ),
    acute(
        ("R51.9", "Headache, unspecified"),
        (8, 120),
        &["310965"],
        None,
        3,
    ),
    acute(
        ("N39.0", "Urinary tract infection, site not specified"),
        (2, 120),
        &[],
        None,
        7,
    ),
    acute(
        ("B34.9", "Viral infection, unspecified"),
        (0, 120),
        &["313782"],
        None,
        7,
    ),
    acute(("U07.1", "COVID-19"), (0, 120), &["313782"], None, 14),
    acute(
        ("L30.9", "Dermatitis, unspecified"),
        (0, 120),
        &[],
        None,
        21,
    ),
    acute(
        ("H10.9", "Unspecified conjunctivitis"),
        (0, 120),
        &[],
        None,
        7,
    ),
    acute(
        ("K59.00", "Constipation, unspecified"),
        (0, 120),
        &[],
        None,
        7,
    ),
    acute(
        ("M54.50", "Low back pain, unspecified"),
        (16, 120),
        &["310965", "849574"],
        None,
        30,
    ),
    acute(
        ("M25.561", "Pain in right knee"),
        (12, 120),
        &["310965"],
        None,
        21,
    ),
    acute(("R53.83", "Other fatigue"), (12, 120), &[], None, 30),
];

pub const EMERGENCY_VISIT: &[Acute] = &[
    acute(
        (
            "S93.401A",
            "Sprain of unspecified ligament of right ankle, initial encounter",
        ),
        (6, 90),
        &["310965"],
        Some("274474001"),
        28,
    ),
    acute(
        ("R10.9", "Unspecified abdominal pain"),
        (3, 120),
        &["313782"],
        None,
        3,
    ),
    acute(("E86.0", "Dehydration"), (0, 120), &[], None, 3),
    acute(("E87.6", "Hypokalemia"), (30, 120), &[], None, 7),
    acute(
        ("I95.9", "Hypotension, unspecified"),
        (40, 120),
        &[],
        None,
        2,
    ),
    acute(
        ("J18.9", "Pneumonia, unspecified organism"),
        (0, 120),
        &["562251"],
        Some("269911007"),
        21,
    ),
];

pub const HOSPITAL_STAY: &[Acute] = &[
    acute(
        ("J18.9", "Pneumonia, unspecified organism"),
        (0, 120),
        &["562251", "313782"],
        Some("269911007"),
        21,
    ),
    acute(
        ("N39.0", "Urinary tract infection, site not specified"),
        (40, 120),
        &["562251"],
        None,
        10,
    ),
    acute(("E86.0", "Dehydration"), (60, 120), &[], None, 5),
    acute(("U07.1", "COVID-19"), (45, 120), &["313782"], None, 21),
];

const fn acute(
    icd: Code,
    ages: (u32, u32),
    meds: &'static [&'static str],
    procedure: Option<&'static str>,
    days: u32,
) -> Acute {
    Acute {
        icd,
        ages,
        meds,
        procedure,
        days,
    }
}

/// Claim diagnoses for visits without a condition.
pub const ADULT_CHECKUP: Code = (
    "Z00.00",
    "Encounter for general adult medical examination without abnormal findings",
);
pub const CHILD_CHECKUP: Code = (
    "Z00.129",
    "Encounter for routine child health examination without abnormal findings",
);
pub const IMMUNIZATION_VISIT: Code = ("Z23", "Encounter for immunization");

/// RxNorm clinical drugs.
pub const MEDICATIONS: &[Code] = &[
    ("314076", "lisinopril 10 MG Oral Tablet"),
    ("197361", "amlodipine 5 MG Oral Tablet"),
    ("316049", "Hydrochlorothiazide 25 MG"),
    ("259255", "Atorvastatin 80 MG Oral Tablet"),
    ("312961", "Simvastatin 20 MG Oral Tablet"),
    ("860975", "24 HR Metformin hydrochloride 500 MG Extended Release Oral Tablet"),
    ("745679", "200 ACTUAT Albuterol 0.09 MG/ACTUAT Metered Dose Inhaler"),
    ("895994", "120 ACTUAT Fluticasone propionate 0.044 MG/ACTUAT Metered Dose Inhaler"),
    ("896209", "60 ACTUAT Fluticasone propionate 0.25 MG/ACTUAT / salmeterol 0.05 MG/ACTUAT Dry Powder Inhaler"),
    ("966222", "Levothyroxine Sodium 0.075 MG Oral Tablet"),
    ("243670", "aspirin 81 MG Oral Tablet"),
    ("309362", "Clopidogrel 75 MG Oral Tablet"),
    ("866414", "24 HR Metoprolol Succinate 100 MG Extended Release Oral Tablet"),
    ("849574", "Naproxen sodium 220 MG Oral Tablet"),
    ("310325", "Ferrous sulfate 325 MG Oral Tablet"),
    ("665078", "Loratadine 5 MG Chewable Tablet"),
    ("904419", "Alendronic acid 10 MG Oral Tablet"),
    ("313782", "Acetaminophen 325 MG Oral Tablet"),
    ("310965", "Ibuprofen 200 MG Oral Tablet"),
    ("834102", "Penicillin V Potassium 500 MG Oral Tablet"),
    ("562251", "Amoxicillin 250 MG / Clavulanate 125 MG Oral Tablet"),
    ("1043400", "Acetaminophen 21.7 MG/ML / Dextromethorphan Hydrobromide 1 MG/ML / doxylamine succinate 0.417 MG/ML Oral Solution"),
];

/// The display of an RxNorm code of [`MEDICATIONS`].
pub fn medication(code: &str) -> Code {
    *MEDICATIONS
        .iter()
        .find(|(c, _)| *c == code)
        .unwrap_or_else(|| panic!("RxNorm {code} is not in MEDICATIONS"))
}

/// SNOMED CT procedures.
pub const PROCEDURES: &[Code] = &[
    ("430193006", "Medication reconciliation (procedure)"),
    ("117015009", "Throat culture (procedure)"),
    ("274474001", "Bone immobilization"),
    ("127783003", "Spirometry (procedure)"),
    ("73761001", "Colonoscopy"),
    ("269911007", "Sputum examination (procedure)"),
    ("180256009", "Subcutaneous immunotherapy"),
    ("65200003", "Insertion of intrauterine contraceptive device"),
];

pub fn procedure(code: &str) -> Code {
    *PROCEDURES
        .iter()
        .find(|(c, _)| *c == code)
        .unwrap_or_else(|| panic!("SNOMED {code} is not in PROCEDURES"))
}

/// SNOMED CT encounter types, with the v3 ActCode class of each.
pub const CHECKUP: Code = ("185349003", "Encounter for check up (procedure)");
pub const SYMPTOM: Code = ("185345009", "Encounter for symptom");
pub const PROBLEM: Code = ("185347001", "Encounter for problem");
pub const EMERGENCY: Code = ("50849002", "Emergency room admission (procedure)");
pub const ADMISSION: Code = ("32485007", "Hospital admission (procedure)");

/// A LOINC measurement with a UCUM unit and a plausible adult range.
pub struct Measure {
    pub loinc: Code,
    pub ucum: &'static str,
    /// Human-readable unit (`Quantity.unit`).
    pub unit: &'static str,
    pub mean: f64,
    pub sd: f64,
    pub lo: f64,
    pub hi: f64,
    pub decimals: u32,
}

const fn measure(
    loinc: Code,
    ucum: &'static str,
    unit: &'static str,
    (mean, sd, lo, hi): (f64, f64, f64, f64),
    decimals: u32,
) -> Measure {
    Measure {
        loinc,
        ucum,
        unit,
        mean,
        sd,
        lo,
        hi,
        decimals,
    }
}

pub const BLOOD_PRESSURE: Code = ("85354-9", "Blood pressure panel with all children optional");
pub const SYSTOLIC: Code = ("8480-6", "Systolic blood pressure");
pub const DIASTOLIC: Code = ("8462-4", "Diastolic blood pressure");
pub const HEART_RATE: Measure = measure(
    ("8867-4", "Heart rate"),
    "/min",
    "beats/minute",
    (74.0, 9.0, 45.0, 130.0),
    0,
);
pub const RESPIRATORY_RATE: Measure = measure(
    ("9279-1", "Respiratory rate"),
    "/min",
    "breaths/minute",
    (15.0, 2.0, 10.0, 30.0),
    0,
);
pub const TEMPERATURE: Measure = measure(
    ("8310-5", "Body temperature"),
    "Cel",
    "°C",
    (36.8, 0.3, 35.5, 38.0),
    1,
);
pub const OXYGEN_SATURATION: Measure = measure(
    (
        "59408-5",
        "Oxygen saturation in Arterial blood by Pulse oximetry",
    ),
    "%",
    "%",
    (97.5, 1.0, 90.0, 100.0),
    0,
);
pub const WEIGHT: Code = ("29463-7", "Body weight");
pub const HEIGHT: Code = ("8302-2", "Body height");
pub const BMI: Code = ("39156-5", "Body mass index (BMI) [Ratio]");
pub const PAIN: Code = (
    "72514-3",
    "Pain severity - 0-10 verbal numeric rating [Score] - Reported",
);
pub const SMOKING_STATUS: Code = ("72166-2", "Tobacco smoking status");
pub const NEVER_SMOKER: Code = ("266919005", "Never smoked tobacco (finding)");
pub const EX_SMOKER: Code = ("8517006", "Ex-smoker (finding)");
pub const SMOKER: Code = ("77176002", "Smoker (finding)");

pub const GLUCOSE: Measure = measure(
    ("2339-0", "Glucose [Mass/volume] in Blood"),
    "mg/dL",
    "mg/dL",
    (92.0, 10.0, 60.0, 140.0),
    0,
);
pub const HBA1C: Measure = measure(
    ("4548-4", "Hemoglobin A1c/Hemoglobin.total in Blood"),
    "%",
    "%",
    (5.3, 0.3, 4.2, 6.0),
    1,
);
pub const CHOLESTEROL: Measure = measure(
    ("2093-3", "Cholesterol [Mass/volume] in Serum or Plasma"),
    "mg/dL",
    "mg/dL",
    (185.0, 25.0, 120.0, 320.0),
    0,
);
pub const TRIGLYCERIDE: Measure = measure(
    ("2571-8", "Triglyceride [Mass/volume] in Serum or Plasma"),
    "mg/dL",
    "mg/dL",
    (130.0, 40.0, 40.0, 500.0),
    0,
);
pub const LDL: Measure = measure(
    (
        "18262-6",
        "Cholesterol in LDL [Mass/volume] in Serum or Plasma by Direct assay",
    ),
    "mg/dL",
    "mg/dL",
    (105.0, 25.0, 40.0, 250.0),
    0,
);
pub const HDL: Measure = measure(
    (
        "2085-9",
        "Cholesterol in HDL [Mass/volume] in Serum or Plasma",
    ),
    "mg/dL",
    "mg/dL",
    (52.0, 10.0, 25.0, 100.0),
    0,
);
pub const METABOLIC: &[Measure] = &[
    GLUCOSE,
    measure(
        ("6299-2", "Urea nitrogen [Mass/volume] in Blood"),
        "mg/dL",
        "mg/dL",
        (14.0, 3.5, 5.0, 40.0),
        0,
    ),
    measure(
        ("38483-4", "Creatinine [Mass/volume] in Blood"),
        "mg/dL",
        "mg/dL",
        (0.95, 0.15, 0.5, 1.5),
        2,
    ),
    measure(
        ("49765-1", "Calcium [Mass/volume] in Blood"),
        "mg/dL",
        "mg/dL",
        (9.5, 0.35, 8.3, 10.7),
        1,
    ),
    measure(
        ("2947-0", "Sodium [Moles/volume] in Blood"),
        "mmol/L",
        "mmol/L",
        (140.0, 2.0, 132.0, 148.0),
        0,
    ),
    measure(
        ("6298-4", "Potassium [Moles/volume] in Blood"),
        "mmol/L",
        "mmol/L",
        (4.2, 0.3, 3.3, 5.3),
        1,
    ),
    measure(
        ("2069-3", "Chloride [Moles/volume] in Blood"),
        "mmol/L",
        "mmol/L",
        (103.0, 2.0, 96.0, 110.0),
        0,
    ),
    measure(
        ("20565-8", "Carbon dioxide, total [Moles/volume] in Blood"),
        "mmol/L",
        "mmol/L",
        (25.0, 2.0, 20.0, 31.0),
        0,
    ),
];
pub const RENAL: &[Measure] = &[
    measure(("38483-4", "Creatinine [Mass/volume] in Blood"), "mg/dL", "mg/dL", (1.8, 0.3, 1.2, 3.0), 2),
    measure(("6299-2", "Urea nitrogen [Mass/volume] in Blood"), "mg/dL", "mg/dL", (28.0, 6.0, 15.0, 60.0), 0),
    measure(("33914-3", "Glomerular filtration rate/1.73 sq M.predicted [Volume Rate/Area] in Serum or Plasma by Creatinine-based formula (MDRD)"), "mL/min/{1.73_m2}", "mL/min/1.73m2", (45.0, 7.0, 30.0, 59.0), 0),
];
pub const BLOOD_COUNT: &[Measure] = &[
    measure(
        ("718-7", "Hemoglobin [Mass/volume] in Blood"),
        "g/dL",
        "g/dL",
        (13.8, 1.2, 9.0, 18.0),
        1,
    ),
    measure(
        (
            "4544-3",
            "Hematocrit [Volume Fraction] of Blood by Automated count",
        ),
        "%",
        "%",
        (41.0, 3.5, 28.0, 54.0),
        1,
    ),
    measure(
        (
            "6690-2",
            "Leukocytes [#/volume] in Blood by Automated count",
        ),
        "10*3/uL",
        "10*3/uL",
        (7.0, 1.5, 3.5, 12.0),
        1,
    ),
    measure(
        ("777-3", "Platelets [#/volume] in Blood by Automated count"),
        "10*3/uL",
        "10*3/uL",
        (250.0, 50.0, 140.0, 450.0),
        0,
    ),
];
pub const TSH: Measure = measure(
    ("3016-3", "Thyrotropin [Units/volume] in Serum or Plasma"),
    "m[IU]/L",
    "mIU/L",
    (2.0, 0.8, 0.4, 4.5),
    2,
);

/// CVX vaccines.
pub const FLU: Code = ("140", "Influenza, seasonal, injectable, preservative free");
pub const COVID: Code = ("208", "COVID-19, mRNA, LNP-S, PF, 30 mcg/0.3 mL dose");
pub const TD: Code = ("113", "Td (adult) preservative free");
/// One-time vaccines by age band (years, inclusive), given at a check-up.
pub const VACCINE_SCHEDULE: &[((u32, u32), Code)] = &[
    ((0, 1), ("08", "Hep B, adolescent or pediatric")),
    ((0, 1), ("20", "DTaP")),
    ((0, 1), ("10", "IPV")),
    ((0, 1), ("49", "Hib (PRP-OMP)")),
    ((0, 1), ("133", "Pneumococcal conjugate PCV 13")),
    ((0, 1), ("119", "rotavirus, monovalent")),
    ((1, 3), ("03", "MMR")),
    ((1, 3), ("21", "varicella")),
    ((1, 3), ("83", "Hep A, ped/adol, 2 dose")),
    ((11, 13), ("115", "Tdap")),
    ((11, 13), ("114", "meningococcal MCV4P")),
    ((11, 26), ("62", "HPV, quadrivalent")),
    ((19, 59), ("43", "Hep B, adult")),
    ((50, 120), ("187", "zoster recombinant")),
    (
        (65, 120),
        ("33", "pneumococcal polysaccharide vaccine, 23 valent"),
    ),
];

/// SNOMED CT allergies with their AllergyIntolerance category.
pub const ALLERGIES: &[(Code, &str)] = &[
    (("91935009", "Allergy to peanuts"), "food"),
    (("300913006", "Shellfish allergy"), "food"),
    (("417532002", "Allergy to fish"), "food"),
    (("91930004", "Allergy to eggs"), "food"),
    (("424213003", "Allergy to bee venom"), "environment"),
    (("419474003", "Allergy to mould"), "environment"),
    (("232350006", "House dust mite allergy"), "environment"),
    (("232347008", "Dander (animal) allergy"), "environment"),
    (("419263009", "Allergy to tree pollen"), "environment"),
    (("300916003", "Latex allergy"), "environment"),
    (("91936005", "Allergy to penicillin"), "medication"),
];

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_medication_and_procedure_named_is_in_its_table() {
        for c in CHRONIC {
            c.meds
                .iter()
                .for_each(|m| assert!(!medication(m).1.is_empty()));
        }
        for a in SYMPTOM_VISIT
            .iter()
            .chain(EMERGENCY_VISIT)
            .chain(HOSPITAL_STAY)
        {
            a.meds
                .iter()
                .for_each(|m| assert!(!medication(m).1.is_empty()));
            a.procedure
                .iter()
                .for_each(|p| assert!(!procedure(p).1.is_empty()));
        }
    }

    #[test]
    fn icd10_codes_look_billable() {
        // Billable codes have at least one character after the category
        // (except the few three-character billable categories used here).
        let all = CHRONIC
            .iter()
            .map(|c| c.icd)
            .chain(
                SYMPTOM_VISIT
                    .iter()
                    .chain(EMERGENCY_VISIT)
                    .chain(HOSPITAL_STAY)
                    .map(|a| a.icd),
            )
            .chain([ADULT_CHECKUP, CHILD_CHECKUP, IMMUNIZATION_VISIT]);
        for (code, display) in all {
            assert!(code.len() >= 3 && !display.is_empty(), "{code}");
            assert!(code.len() == 3 || code.as_bytes()[3] == b'.', "{code}");
            assert_ne!(code, "M54.5", "M54.5 is not billable since FY2022");
        }
    }

    #[test]
    fn generated_data_uses_billable_codes() {
        use super::*;
        let cs = crate::terminology::shipped_icd10cm();
        let mut all: Vec<(&str, &str)> = CHRONIC.iter().map(|c| c.icd).collect();
        for list in [SYMPTOM_VISIT, EMERGENCY_VISIT, HOSPITAL_STAY] {
            all.extend(list.iter().map(|a| a.icd));
        }
        all.extend([ADULT_CHECKUP, CHILD_CHECKUP, IMMUNIZATION_VISIT]);
        let mut other_display = Vec::new();
        for (code, display) in all {
            let concept = cs.concept(code).unwrap_or_else(|| panic!("{code} exists"));
            assert!(cs.is_billable(concept), "{code} is billable");
            if !concept.display.eq_ignore_ascii_case(display) {
                other_display.push(code);
            }
        }
        eprintln!("generator displays differing from the release: {other_display:?}");
    }
}
