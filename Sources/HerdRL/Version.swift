/// Herd's version, as `herd --version` prints it and exports record it.
public enum HerdVersion {
  public static let string = "0.1.0"
}
