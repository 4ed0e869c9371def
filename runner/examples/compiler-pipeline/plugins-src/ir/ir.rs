// The pipeline's program: statements `name = lhs [op rhs]`, as JSON between the stages.
#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Program {
    pub stmts: Vec<Stmt>,
}

#[derive(serde::Serialize, serde::Deserialize, Clone, Debug)]
pub struct Stmt {
    pub name: String,
    pub lhs: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub op: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rhs: Option<String>,
}
